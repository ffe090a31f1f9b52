package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// newFlagSet makes a flag set whose --help prints the synopsis and flags.
func newFlagSet(env *cmdEnv, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: plasmd %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may appear before or after positional
// arguments; everything after "--" is returned separately, unparsed.
// It returns flag.ErrHelp when help was asked for.
func parseArgs(fs *flag.FlagSet, args []string) (positional, rest []string, err error) {
	for i, a := range args {
		if a == "--" {
			rest = args[i+1:]
			args = args[:i]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, rest, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// helpOrUsage maps a parse error to an exit status.
func helpOrUsage(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// defaultDataDir is where identity and caches live unless --data-dir says
// otherwise: $PLASMD_DATA_DIR, else ~/.plasmd.
func defaultDataDir() string {
	if d := os.Getenv("PLASMD_DATA_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".plasmd"
	}
	return filepath.Join(home, ".plasmd")
}

func errf(w io.Writer, format string, a ...any) {
	fmt.Fprintf(w, "plasmd: "+format+"\n", a...)
}

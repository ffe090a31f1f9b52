// Command mkdeb builds a plasmd .deb from a plasmd binary; `make deb` runs
// it once per architecture.
//
//	go run ./cmd/mkdeb -arch arm64 -binary ../build/linux_arm64/plasmd -version v1.2.3 -out ../build/deb
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/packaging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkdeb", flag.ContinueOnError)
	root := fs.String("root", "..", "repository root")
	binary := fs.String("binary", "", "plasmd built for -arch")
	arch := fs.String("arch", "", "amd64 or arm64")
	version := fs.String("version", "", "the build's version (git describe --tags --always --dirty)")
	epoch := fs.String("mtime", os.Getenv("SOURCE_DATE_EPOCH"), "Unix time for every timestamp in the package (default $SOURCE_DATE_EPOCH)")
	out := fs.String("out", ".", "directory to write the package to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *arch == "" || *version == "" {
		return fmt.Errorf("-binary, -arch and -version are required")
	}
	sec, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("-mtime %q: want Unix seconds (set SOURCE_DATE_EPOCH, e.g. to git log -1 --format=%%ct)", *epoch)
	}
	modCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	copyright, err := packaging.Copyright(*root, *binary, strings.TrimSpace(string(modCache)))
	if err != nil {
		return err
	}
	o := packaging.Options{Root: *root, Binary: *binary, Arch: *arch, Version: *version,
		MTime: time.Unix(sec, 0).UTC(), Copyright: copyright}
	name, err := packaging.FileName(o)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := packaging.Build(o, &buf); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(*out, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

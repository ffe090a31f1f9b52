package packaging

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

var licenseFile = regexp.MustCompile(`^(?i)(licen[cs]e|copying|notice)([-._].*)?$`)

// Copyright is the package's copyright file: packaging/copyright for Plasm
// itself, then, for every Go module compiled into binary (read from its
// build information), the module's licence files from the module cache.
// A module without one is an error, so a new dependency gets looked at.
func Copyright(root, binary, modCache string) ([]byte, error) {
	head, err := os.ReadFile(filepath.Join(root, "packaging", "copyright"))
	if err != nil {
		return nil, err
	}
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("reading build information of %s: %w", binary, err)
	}
	var b bytes.Buffer
	b.Write(head)
	deps := bi.Deps
	sort.Slice(deps, func(i, j int) bool { return deps[i].Path < deps[j].Path })
	for _, d := range deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if strings.HasPrefix(d.Version, "(") || d.Version == "" {
			continue // a local replacement: Plasm's own code
		}
		dir := filepath.Join(modCache, escapePath(d.Path)+"@"+escapePath(d.Version))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("module %s@%s: %w (is it in the module cache? go mod download)", d.Path, d.Version, err)
		}
		found := 0
		for _, e := range entries {
			if e.IsDir() || !licenseFile.MatchString(e.Name()) {
				continue
			}
			text, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			if found == 0 {
				fmt.Fprintf(&b, "\nFiles: compiled into /usr/bin/plasmd from Go module %s %s\n", d.Path, d.Version)
				fmt.Fprintf(&b, "Copyright: see the licence text below\nLicense: %s-%s\n", d.Path, e.Name())
			} else {
				fmt.Fprintf(&b, "\nLicense: %s-%s\n", d.Path, e.Name())
			}
			writeFormatted(&b, text)
			found++
		}
		if found == 0 {
			return nil, fmt.Errorf("module %s@%s: no licence file in %s", d.Path, d.Version, dir)
		}
	}
	return b.Bytes(), nil
}

// writeFormatted writes text as a copyright-format continuation block:
// each line indented by one space, blank lines as " .".
func writeFormatted(b *bytes.Buffer, text []byte) {
	for _, line := range strings.Split(strings.TrimRightFunc(string(text), unicode.IsSpace), "\n") {
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if line == "" {
			b.WriteString(" .\n")
			continue
		}
		b.WriteString(" " + line + "\n")
	}
}

// escapePath is the module cache's case encoding: an upper-case letter
// becomes '!' and its lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

//go:build tools

// Checks that need wat2wasm; `make check-tools` runs them (CI installs
// wabt). Plain `go test` leaves them out, so the suite needs no toolchain
// beyond Go.
package testwasm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleModulesMatchTheirSource(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range WAT {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(root, "examples", "wat", name+".wat"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := Wat2Wasm(string(src), nil)
			if err != nil {
				t.Fatalf("wat2wasm: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(root, "examples", "wat", name+".wasm"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("examples/wat/%s.wasm differs from wat2wasm's output for %s.wat: run `make wat`", name, name)
			}
		})
	}
	// Every committed module has its source, and WAT lists them all.
	wasms, _ := filepath.Glob(filepath.Join(root, "examples", "wat", "*.wasm"))
	wats, _ := filepath.Glob(filepath.Join(root, "examples", "wat", "*.wat"))
	if len(wasms) != len(WAT) || len(wats) != len(WAT) {
		t.Errorf("examples/wat has %d .wasm and %d .wat files; testwasm.WAT lists %d", len(wasms), len(wats), len(WAT))
	}
}

func TestRecordedSourcesReassemble(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "build") {
			return filepath.SkipDir
		}
		if d.IsDir() || filepath.Ext(path) != ".wat" || filepath.Base(filepath.Dir(path)) != "wat" ||
			filepath.Base(filepath.Dir(filepath.Dir(path))) != "testdata" {
			return nil
		}
		n++
		rel, _ := filepath.Rel(root, path)
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(text)
		if key := hex.EncodeToString(sum[:8]); strings.TrimSuffix(filepath.Base(path), ".wat") != key {
			t.Errorf("%s: name does not match its content's key %s", rel, key)
		}
		flags, err := ParseFlagsLine(string(text))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		want, err := Wat2Wasm(string(text), flags)
		if err != nil {
			t.Errorf("%s: wat2wasm: %v", rel, err)
			return nil
		}
		got, err := os.ReadFile(strings.TrimSuffix(path, ".wat") + ".wasm")
		if err != nil {
			t.Errorf("%s: %v", rel, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: the committed .wasm differs from wat2wasm's output", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no recorded WAT sources found under */testdata/wat")
	}
	t.Logf("%d recorded sources re-assembled", n)
}

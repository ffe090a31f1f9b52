// Package testwasm gives tests the project's example WebAssembly modules,
// building them on first use (the same outputs `make wasm` produces), so
// `go test ./...` works on a fresh checkout.
package testwasm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Names of the hand-written edge-case modules in examples/wat.
const (
	Loop   = "loop"   // spins forever
	Grow   = "grow"   // grows memory until refused, then traps
	Flood  = "flood"  // writes to stdout forever
	Trap   = "trap"   // executes unreachable
	Exit7  = "exit7"  // writes "bye" to stderr and exits 7
	Tiny   = "tiny"   // writes "ok\n" and returns
	BigMem = "bigmem" // declares a 2.5 GiB minimum memory
	Slow   = "slow"   // sleeps 2 s, then writes "done\n"
	Hello  = "hello"  // examples/hello, built from Go
)

// RepoRoot finds the module root by walking up to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Build makes sure build/wasm/NAME.wasm exists and returns its path.
func Build(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, "build", "wasm", name+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	// Build beside the target and rename, so parallel test binaries never
	// see a half-written module.
	tmp, err := os.CreateTemp(filepath.Dir(out), name+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	var cmd *exec.Cmd
	if name == Hello {
		cmd = exec.Command("go", "build", "-trimpath", "-o", tmp.Name(), "./examples/hello")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	} else {
		cmd = exec.Command("wat2wasm", filepath.Join("examples", "wat", name+".wat"), "-o", tmp.Name())
	}
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s.wasm (%s): %w: %s", name, cmd.Path, err, b)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// Path returns the path of a built example module, failing the test when it
// cannot be built.
func Path(tb testing.TB, name string) string {
	tb.Helper()
	p, err := Build(name)
	if err != nil {
		tb.Fatalf("test module %s: %v", name, err)
	}
	return p
}

// Bytes returns the bytes of a built example module.
func Bytes(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, name))
	if err != nil {
		tb.Fatalf("test module %s: %v", name, err)
	}
	return b
}

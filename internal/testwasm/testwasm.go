// Package testwasm gives tests the project's example WebAssembly modules:
// the hand-written edge cases are committed, assembled, beside their .wat
// sources in examples/wat (so no WebAssembly toolchain is needed; a test
// run by `make check-tools` re-assembles them with wat2wasm and compares),
// and hello is built from Go on first use, as `make wasm` does.
package testwasm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	Echo   = "echo"   // writes each argument and a newline, then stdin
	Probe  = "probe"  // reports environment, preopens, clocks and random bytes as 64 raw bytes
	Mem8   = "mem8"   // grows to 8 MiB, writes "ok\n"; traps if refused
	CPU    = "cpu"    // N million rounds of xorshift64 (N = argument, default 2048), writes the state in hex
	Hello  = "hello"  // examples/hello, built from Go
)

// RepoRoot finds the repository root: the nearest directory above the
// working directory whose go.mod is the root module's (the simulator and
// the harness are modules of their own, nested inside it).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/phase-protocol/plasm\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the root go.mod (module github.com/phase-protocol/plasm) is not above the working directory")
		}
		dir = parent
	}
}

// WAT lists the hand-written modules, each committed as examples/wat/NAME.wasm.
var WAT = []string{Loop, Grow, Flood, Trap, Exit7, Tiny, BigMem, Slow, Echo, Probe, Mem8, CPU}

// Build returns the path of a module: examples/wat/NAME.wasm for the
// hand-written ones, build/wasm/hello.wasm (built if missing) for hello.
func Build(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if name != Hello {
		p := filepath.Join(root, "examples", "wat", name+".wasm")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("test module %s: %w (assemble it with: wat2wasm examples/wat/%s.wat -o %s)", name, err, name, filepath.Join("examples", "wat", name+".wasm"))
		}
		return p, nil
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
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp.Name(), "./examples/hello")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
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

// AssembleEnv names the environment variable that lets Assemble run
// wat2wasm: `make wat` sets it to record new sources, and check-tools sets
// it so every recorded source is re-assembled and compared.
const AssembleEnv = "PLASM_WAT2WASM"

// CacheDir is where Assemble keeps assembled WAT sources, relative to the
// calling test's package directory.
const CacheDir = "testdata/wat"

// Assemble returns the binary of the WAT source src as wat2wasm assembles
// it with --debug-names and flags. The pair is committed under CacheDir as
// KEY.wat (the source, its flags on the first line) and KEY.wasm, so tests
// need no WebAssembly toolchain. With PLASM_WAT2WASM=1 it runs wat2wasm,
// records a new source and fails on a recorded binary that differs.
func Assemble(tb testing.TB, src string, flags ...string) []byte {
	tb.Helper()
	flags = append([]string{"--debug-names"}, flags...)
	text := FlagsLine(flags) + src + "\n"
	sum := sha256.Sum256([]byte(text))
	key := hex.EncodeToString(sum[:8])
	watPath, wasmPath := filepath.Join(CacheDir, key+".wat"), filepath.Join(CacheDir, key+".wasm")
	cached, err := os.ReadFile(wasmPath)
	if os.Getenv(AssembleEnv) != "1" {
		if err != nil {
			tb.Fatalf("no assembled module for this WAT source (%s): run `make wat` with wat2wasm installed, and commit %s: %v", key, CacheDir, err)
		}
		return cached
	}
	got, aerr := Wat2Wasm(text, flags)
	if aerr != nil {
		tb.Fatalf("wat2wasm: %v", aerr)
	}
	if err == nil {
		if !bytes.Equal(cached, got) {
			tb.Fatalf("%s differs from what wat2wasm makes of %s: re-assemble with `make wat`", wasmPath, watPath)
		}
		return got
	}
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(watPath, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(wasmPath, got, 0o644); err != nil {
		tb.Fatal(err)
	}
	return got
}

// flagsPrefix starts the first line of a recorded source: a WAT comment
// holding wat2wasm's flags.
const flagsPrefix = ";; wat2wasm"

// FlagsLine is the comment line that records wat2wasm's flags.
func FlagsLine(flags []string) string {
	return flagsPrefix + " " + strings.Join(flags, " ") + "\n"
}

// ParseFlagsLine returns the flags recorded on a source's first line.
func ParseFlagsLine(text string) ([]string, error) {
	line, _, _ := strings.Cut(text, "\n")
	rest, ok := strings.CutPrefix(line, flagsPrefix)
	if !ok {
		return nil, fmt.Errorf("first line %q does not start with %q", line, flagsPrefix)
	}
	return strings.Fields(rest), nil
}

// Wat2Wasm assembles WAT text with the wat2wasm program.
func Wat2Wasm(text string, flags []string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "wat2wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
		return nil, err
	}
	if b, err := exec.Command("wat2wasm", append(append([]string{}, flags...), in, "-o", out)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, b)
	}
	return os.ReadFile(out)
}

//go:build tools

// Checks that need systemd's tools; `make check-tools` runs them (CI
// installs systemd). Plain `go test` leaves them out.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// unitRoot lays out a root with the host's systemd units, the built plasmd
// and the unit, so systemd-analyze sees the unit as installed.
func unitRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr/lib/")).CombinedOutput(); err != nil {
		t.Fatalf("copying the host's systemd units: %v: %s", err, out)
	}
	bin, err := os.ReadFile(plasmdBinary(t, hostArch()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, BinPath), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, UnitPath), readUnit(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSystemdAnalyzeVerify(t *testing.T) {
	root := unitRoot(t)
	// verify exits 0 on unknown keys and only warns: any output fails.
	out, err := exec.Command("systemd-analyze", "verify", "--root="+root, "plasmd.service").CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestSystemdAnalyzeSecurity(t *testing.T) {
	root := unitRoot(t)
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--root="+root, "plasmd.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for plasmd.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f (0 = fully sandboxed, 10 = none)", level)
	// 1.6 with bookworm's systemd 252; the rest is the network access a
	// node needs and executable memory for the compiler.
	if level > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", level, out)
	}
}

package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blakesmith/ar"
)

// testVersion is linked into the test binaries, as `make deb` does.
const testVersion = "v1.2.3-4-gabc1234"

var testMTime = time.Unix(1700000000, 0).UTC()

var (
	buildOnce sync.Map // arch -> *builtBinary
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// plasmdBinary builds cmd/plasmd for linux/arch as `make deb` does
// (static, -trimpath, version by -ldflags), once per test binary.
func plasmdBinary(tb testing.TB, arch string) string {
	tb.Helper()
	v, _ := buildOnce.LoadOrStore(arch, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "plasmd-"+arch+"-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "plasmd")
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
			"-ldflags", "-s -w -X github.com/phase-protocol/plasm/node/version.Version="+testVersion,
			"-o", b.path, "./cmd/plasmd")
		cmd.Dir = repoRoot(tb)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = err
			tb.Logf("go build: %s", out)
		}
	})
	if b.err != nil {
		tb.Fatalf("building plasmd for %s: %v", arch, b.err)
	}
	return b.path
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

func modCache(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		tb.Fatalf("go env GOMODCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// buildDeb builds a package for arch and returns its bytes.
func buildDeb(tb testing.TB, arch string, mtime time.Time) []byte {
	tb.Helper()
	bin := plasmdBinary(tb, arch)
	copyright, err := Copyright(repoRoot(tb), bin, modCache(tb))
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	err = Build(Options{Root: repoRoot(tb), Binary: bin, Arch: arch, Version: testVersion, MTime: mtime, Copyright: copyright}, &buf)
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// entry is one member of a tar archive inside the package.
type entry struct {
	hdr  *tar.Header
	body []byte
}

// debArchive is a .deb taken apart: its ar members, and the entries of
// control.tar.gz and data.tar.gz by name (without the leading "./").
type debArchive struct {
	members []string
	control map[string]entry
	data    map[string]entry
	order   []string // data entry names in archive order
}

func readDeb(tb testing.TB, b []byte) debArchive {
	tb.Helper()
	d := debArchive{control: map[string]entry{}, data: map[string]entry{}}
	r := ar.NewReader(bytes.NewReader(b))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("reading ar: %v", err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			tb.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		d.members = append(d.members, name)
		switch name {
		case "control.tar.gz":
			readTarGz(tb, body, d.control, nil)
		case "data.tar.gz":
			readTarGz(tb, body, d.data, &d.order)
		}
	}
	return d
}

func readTarGz(tb testing.TB, b []byte, into map[string]entry, order *[]string) {
	tb.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		into[name] = entry{hdr: h, body: body}
		if order != nil {
			*order = append(*order, name)
		}
	}
}

func hostArch() string { return runtime.GOARCH }

package packaging

import (
	"bytes"
	"crypto/md5"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phase-protocol/plasm/node/config"
)

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty"},
		{"v1.2.3-rc.1-4-gabc1234", "1.2.3~rc.1+4.gabc1234"},
		{"b15a0e0", "0.0.0+gb15a0e0"},
		{"b15a0e0-dirty", "0.0.0+gb15a0e0.dirty"},
		{"dev", "0.0.0+dev"},
	} {
		got, err := DebVersion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("DebVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "latest", "v1.2", "v1.2.3 ", "v1.2.3-rc_1", "B15A0E0"} {
		if got, err := DebVersion(bad); err == nil {
			t.Errorf("DebVersion(%q) = %q, want an error", bad, got)
		}
	}
}

// TestDebVersionsSortLikeReleases checks the order under dpkg's rules,
// which decide what apt sees as an upgrade.
func TestDebVersionsSortLikeReleases(t *testing.T) {
	order := []string{"b15a0e0", "v1.2.3-rc.1", "v1.2.3", "v1.2.3-4-gabc1234", "v1.2.4"}
	var debs []string
	for _, v := range order {
		d, err := DebVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		debs = append(debs, d)
	}
	for i := 1; i < len(debs); i++ {
		if debVersionLess(debs[i], debs[i-1]) || debs[i] == debs[i-1] {
			t.Errorf("%s (%s) does not sort after %s (%s)", debs[i], order[i], debs[i-1], order[i-1])
		}
	}
}

func TestPackageContents(t *testing.T) {
	root := repoRoot(t)
	readRepo := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			d := readDeb(t, buildDeb(t, arch, testMTime))
			if want := []string{"debian-binary", "control.tar.gz", "data.tar.gz"}; strings.Join(d.members, " ") != strings.Join(want, " ") {
				t.Errorf("ar members %v, want %v", d.members, want)
			}

			// Exactly these files and directories, root-owned, these modes.
			want := map[string]int64{
				"etc/": 0o755, "etc/plasm/": 0o755, "etc/plasm/plasmd.json": 0o644,
				"usr/": 0o755, "usr/bin/": 0o755, "usr/bin/plasmd": 0o755,
				"usr/lib/": 0o755, "usr/lib/systemd/": 0o755, "usr/lib/systemd/system/": 0o755,
				"usr/lib/systemd/system/plasmd.service": 0o644,
				"usr/share/":                            0o755, "usr/share/doc/": 0o755, "usr/share/doc/plasmd/": 0o755,
				"usr/share/doc/plasmd/copyright": 0o644,
			}
			for _, doc := range Docs {
				want["usr/share/doc/plasmd/"+doc] = 0o644
			}
			for name, e := range d.data {
				mode, ok := want[name]
				if !ok {
					t.Errorf("unexpected %s in the package", name)
					continue
				}
				if e.hdr.Mode&0o7777 != mode {
					t.Errorf("%s: mode %o, want %o", name, e.hdr.Mode&0o7777, mode)
				}
				if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "root" || e.hdr.Gname != "root" {
					t.Errorf("%s: owner %d:%d (%s:%s), want root:root", name, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname, e.hdr.Gname)
				}
				if !e.hdr.ModTime.Equal(testMTime) {
					t.Errorf("%s: mtime %v, want %v", name, e.hdr.ModTime, testMTime)
				}
			}
			for name := range want {
				if _, ok := d.data[name]; !ok {
					t.Errorf("%s missing from the package", name)
				}
			}

			// The files are the repository's, the binary the one built.
			same := map[string][]byte{
				"usr/lib/systemd/system/plasmd.service": readRepo("packaging/plasmd.service"),
				"etc/plasm/plasmd.json":                 readRepo("docs/plasmd.example.json"),
			}
			bin, err := os.ReadFile(plasmdBinary(t, arch))
			if err != nil {
				t.Fatal(err)
			}
			same["usr/bin/plasmd"] = bin
			for name, b := range same {
				if !bytes.Equal(d.data[name].body, b) {
					t.Errorf("%s differs from its source", name)
				}
			}
			f, err := elf.NewFile(bytes.NewReader(d.data["usr/bin/plasmd"].body))
			if err != nil {
				t.Fatalf("usr/bin/plasmd is not ELF: %v", err)
			}
			if wantM := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != wantM {
				t.Errorf("usr/bin/plasmd is for %v, want %v", f.Machine, wantM)
			}

			// The shipped configuration is one plasmd start accepts, with
			// the data directory the unit manages.
			cfg, err := config.Parse(d.data["etc/plasm/plasmd.json"].body)
			if err != nil {
				t.Fatalf("shipped config: %v", err)
			}
			if cfg.DataDir != DataDir {
				t.Errorf("shipped config data_dir %q, want %q", cfg.DataDir, DataDir)
			}

			cr := string(d.data["usr/share/doc/plasmd/copyright"].body)
			for _, s := range []string{"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
				"Go module github.com/tetratelabs/wazero", "Go module github.com/libp2p/go-libp2p "} {
				if !strings.Contains(cr, s) {
					t.Errorf("copyright lacks %q", s)
				}
			}

			// Control: metadata, the conffile, checksums, maintainer scripts.
			control := string(d.control["control"].body)
			for _, line := range []string{"Package: plasmd", "Version: 1.2.3+4.gabc1234", "Architecture: " + arch, "Depends: passwd"} {
				if !strings.Contains(control, line+"\n") {
					t.Errorf("control lacks %q:\n%s", line, control)
				}
			}
			if got := string(d.control["conffiles"].body); got != ConfigPath+"\n" {
				t.Errorf("conffiles = %q, want %q", got, ConfigPath+"\n")
			}
			sums := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(d.control["md5sums"].body)), "\n") {
				sum, name, _ := strings.Cut(line, "  ")
				sums[name] = sum
			}
			for name, e := range d.data {
				if strings.HasSuffix(name, "/") {
					continue
				}
				h := md5.Sum(e.body)
				if sums[name] != hex.EncodeToString(h[:]) {
					t.Errorf("md5sums entry for %s is %q, want %x", name, sums[name], h)
				}
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				e, ok := d.control[s]
				if !ok {
					t.Errorf("control archive lacks %s", s)
					continue
				}
				if e.hdr.Mode&0o777 != 0o755 {
					t.Errorf("%s: mode %o, want 755", s, e.hdr.Mode&0o777)
				}
				if !bytes.Equal(e.body, readRepo("packaging/scripts/"+s)) {
					t.Errorf("%s differs from packaging/scripts/%s", s, s)
				}
			}

			// The packaged binary reports the version it was built with.
			if arch == hostArch() {
				p := filepath.Join(t.TempDir(), "plasmd")
				if err := os.WriteFile(p, d.data["usr/bin/plasmd"].body, 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(p, "version").CombinedOutput()
				if err != nil || !strings.HasPrefix(string(out), "plasmd "+testVersion+" ") {
					t.Errorf("plasmd version: %v: %s", err, out)
				}
			}
		})
	}
}

func TestPackageIsReproducible(t *testing.T) {
	a := buildDeb(t, "amd64", testMTime)
	b := buildDeb(t, "amd64", testMTime)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same inputs differ")
	}
	// The fixed time is what makes it so: another time, other bytes.
	c := buildDeb(t, "amd64", testMTime.Add(time.Hour))
	if bytes.Equal(a, c) {
		t.Fatal("the package does not carry the given mtime")
	}
}

func TestBuildRejectsBadOptions(t *testing.T) {
	bin := plasmdBinary(t, "amd64")
	good := Options{Root: repoRoot(t), Binary: bin, Arch: "amd64", Version: "v1.0.0", MTime: testMTime, Copyright: []byte("x")}
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"arch", func(o *Options) { o.Arch = "i386" }, `arch "i386"`},
		{"mtime", func(o *Options) { o.MTime = time.Time{} }, "mtime"},
		{"version", func(o *Options) { o.Version = "latest" }, `version "latest"`},
		{"binary", func(o *Options) { o.Binary = filepath.Join(t.TempDir(), "none") }, "binary"},
		{"copyright", func(o *Options) { o.Copyright = nil }, "copyright"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.change(&o)
			err := Build(o, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// debVersionLess compares two upstream versions (no epoch or revision) as
// dpkg does: alternating non-digit and digit runs; in non-digit runs '~'
// sorts before everything, even the end, and letters before other
// characters; digit runs compare as numbers.
func debVersionLess(a, b string) bool {
	order := func(c byte) int {
		switch {
		case c == '~':
			return -1
		case c >= '0' && c <= '9':
			return 0
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return int(c)
		default:
			return int(c) + 256
		}
	}
	for a != "" || b != "" {
		for (a != "" && (a[0] < '0' || a[0] > '9')) || (b != "" && (b[0] < '0' || b[0] > '9')) {
			var ca, cb int
			if a != "" {
				ca = order(a[0])
			}
			if b != "" {
				cb = order(b[0])
			}
			if ca != cb {
				return ca < cb
			}
			a, b = a[1:], b[1:]
		}
		na, nb := 0, 0
		for a != "" && a[0] >= '0' && a[0] <= '9' {
			na, a = na*10+int(a[0]-'0'), a[1:]
		}
		for b != "" && b[0] >= '0' && b[0] <= '9' {
			nb, b = nb*10+int(b[0]-'0'), b[1:]
		}
		if na != nb {
			return na < nb
		}
	}
	return false
}

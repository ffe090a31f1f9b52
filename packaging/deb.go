// Package packaging builds the plasmd Debian packages with nfpm (as a
// library, pinned in this module's go.mod) and holds the checks that keep
// the unit file in step with the shipped configuration.
package packaging

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Installed paths.
const (
	BinPath       = "/usr/bin/plasmd"
	UnitPath      = "/usr/lib/systemd/system/plasmd.service"
	ConfigPath    = "/etc/plasm/plasmd.json"
	CopyrightPath = "/usr/share/doc/plasmd/copyright"
	DocDir        = "/usr/share/doc/plasmd"
	DataDir       = "/var/lib/plasm"
)

// Options says what to package.
type Options struct {
	Root      string    // repository root: packaging/ and docs/ are read from it
	Binary    string    // plasmd built for Arch
	Arch      string    // Debian architecture: amd64 or arm64
	Version   string    // the build's version (git describe), turned into a Debian version
	MTime     time.Time // every timestamp in the package, for reproducible bytes
	Copyright []byte    // the whole copyright file (see Copyright)
}

// Docs are the operator documents shipped in DocDir.
var Docs = []string{"INSTALL.md", "OPERATIONS.md", "CONFIG.md"}

// FileName is the package's conventional name, e.g. plasmd_1.2.0_arm64.deb.
func FileName(o Options) (string, error) {
	v, err := DebVersion(o.Version)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("plasmd_%s_%s.deb", v, o.Arch), nil
}

// Build writes the .deb to w.
func Build(o Options, w io.Writer) error {
	if o.Arch != "amd64" && o.Arch != "arm64" {
		return fmt.Errorf("arch %q: want amd64 or arm64", o.Arch)
	}
	if o.MTime.IsZero() {
		return fmt.Errorf("mtime: not set (reproducible packages need a fixed time, e.g. SOURCE_DATE_EPOCH)")
	}
	if len(o.Copyright) == 0 {
		return fmt.Errorf("copyright: empty")
	}
	version, err := DebVersion(o.Version)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	// nfpm reads contents from files: the copyright is written beside
	// the binary's build output.
	tmp, err := os.MkdirTemp("", "plasmd-deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	copyright := filepath.Join(tmp, "copyright")
	if err := os.WriteFile(copyright, o.Copyright, 0o644); err != nil {
		return err
	}
	pkg := filepath.Join(o.Root, "packaging")
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode}}
	}
	contents := files.Contents{
		file(o.Binary, BinPath, 0o755),
		file(filepath.Join(pkg, "plasmd.service"), UnitPath, 0o644),
		{Source: filepath.Join(o.Root, "docs", "plasmd.example.json"), Destination: ConfigPath,
			Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		file(copyright, CopyrightPath, 0o644),
	}
	for _, d := range Docs {
		contents = append(contents, file(filepath.Join(o.Root, "docs", d), DocDir+"/"+d, 0o644))
	}
	info := &nfpm.Info{
		Name:          "plasmd",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "Plasm developers <plasm@phase-protocol.invalid>",
		Homepage:      "https://github.com/phase-protocol/plasm",
		Description: "Phase node: runs WebAssembly jobs for other machines\n" +
			"plasmd joins a private libp2p Kademlia network, advertises what it can run,\n" +
			"accepts WebAssembly (WASI preview 1) jobs, runs them in a wazero sandbox and\n" +
			"returns the output with an Ed25519-signed receipt. It is also the command\n" +
			"line client for local runs, submitting jobs and verifying receipts.",
		MTime: o.MTime,
		Overridables: nfpm.Overridables{
			Depends:  []string{"passwd"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(pkg, "scripts", "postinst"),
				PreRemove:   filepath.Join(pkg, "scripts", "prerm"),
				PostRemove:  filepath.Join(pkg, "scripts", "postrm"),
			},
			Deb: nfpm.Deb{Compression: "gzip"},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("preparing package: %w", err)
	}
	var buf bytes.Buffer
	if err := deb.Default.Package(info, &buf); err != nil {
		return fmt.Errorf("building package: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

var (
	tagged   = regexp.MustCompile(`^v?([0-9]+\.[0-9]+\.[0-9]+)(-[0-9A-Za-z.]+?)?(?:-([0-9]+)-g([0-9a-f]+))?$`)
	untagged = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	debianV  = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebVersion turns the build's version (git describe --tags --always
// --dirty) into a Debian version that sorts the same way: v1.2.3 is 1.2.3,
// a pre-release v1.2.3-rc.1 sorts before it as 1.2.3~rc.1, commits after a
// tag follow it as 1.2.3+4.gabc1234, and a tree with no tag is
// 0.0.0+gabc1234 (0.0.0+dev for "dev"). "-dirty" adds "dirty" to the
// part after '+'.
func DebVersion(v string) (string, error) {
	base, dirty := strings.CutSuffix(v, "-dirty")
	var out, build string
	if m := tagged.FindStringSubmatch(base); m != nil {
		out = m[1]
		if m[2] != "" {
			out += "~" + m[2][1:]
		}
		if m[3] != "" {
			build = m[3] + ".g" + m[4]
		}
	} else if untagged.MatchString(base) || base == "dev" {
		out = "0.0.0"
		build = "g" + base
		if base == "dev" {
			build = "dev"
		}
	} else {
		return "", fmt.Errorf("version %q: not a git describe output (v1.2.3, v1.2.3-4-gabc1234, abc1234, each optionally -dirty)", v)
	}
	if dirty {
		build = strings.TrimPrefix(build+".dirty", ".")
	}
	if build != "" {
		out += "+" + build
	}
	if !debianV.MatchString(out) || strings.Contains(out, "..") {
		return "", fmt.Errorf("version %q gives %q, not a Debian version", v, out)
	}
	return out, nil
}

package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shims stand in for the system commands the maintainer scripts call, so
// the scripts run unprivileged against a fake root: user and group
// databases are files, `install -d` records the owner it would set, and
// every call is logged.
var shims = map[string]string{
	"getent": `db="$STATE/$1"; [ -f "$db" ] && grep -q "^$2:" "$db"`,
	"groupadd": `echo "groupadd $*" >>"$STATE/log"; name=$(eval echo \${$#})
grep -q "^$name:" "$STATE/group" 2>/dev/null && { echo "groupadd: group '$name' already exists" >&2; exit 9; }
echo "$name:x:999:" >>"$STATE/group"`,
	"useradd": `echo "useradd $*" >>"$STATE/log"; name=$(eval echo \${$#})
grep -q "^$name:" "$STATE/passwd" 2>/dev/null && { echo "useradd: user '$name' already exists" >&2; exit 9; }
echo "$name:x:999:999::/var/lib/plasm:/usr/sbin/nologin" >>"$STATE/passwd"`,
	"install": `echo "install $*" >>"$STATE/log"; owner= group= mode=
while [ $# -gt 1 ]; do case "$1" in -d) ;; -o) owner=$2; shift ;; -g) group=$2; shift ;; -m) mode=$2; shift ;; esac; shift; done
grep -q "^$owner:" "$STATE/passwd" || { echo "install: invalid user '$owner'" >&2; exit 1; }
mkdir -p "$1" && chmod "$mode" "$1" && echo "$owner:$group" >"$1.owner"`,
	"systemctl": `echo "systemctl $*" >>"$STATE/log"`,
}

type scriptEnv struct {
	root, state string
	env         []string
}

func newScriptEnv(t *testing.T, systemd bool) *scriptEnv {
	t.Helper()
	dir := t.TempDir()
	e := &scriptEnv{root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state")}
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{e.root, e.state, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range shims {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if systemd {
		if err := os.MkdirAll(filepath.Join(e.root, "run/systemd/system"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.env = []string{"PATH=" + bin + ":/usr/bin:/bin", "DPKG_ROOT=" + e.root, "STATE=" + e.state}
	return e
}

// run runs a maintainer script and returns the calls it logged.
func (e *scriptEnv) run(t *testing.T, script string, args ...string) []string {
	t.Helper()
	before := e.read(t, "log")
	cmd := exec.Command("sh", append([]string{filepath.Join(repoRoot(t), "packaging", "scripts", script)}, args...)...)
	cmd.Env = e.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
	calls := strings.TrimPrefix(e.read(t, "log"), before)
	if calls == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(calls, "\n"), "\n")
}

func (e *scriptEnv) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.state, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot is everything the scripts may change: the user and group
// databases and the fake root's tree with modes.
func (e *scriptEnv) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(e.read(t, "passwd") + e.read(t, "group"))
	filepath.Walk(e.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.root, p)
		b.WriteString(rel + " " + fi.Mode().String() + "\n")
		if strings.HasSuffix(p, ".owner") {
			c, _ := os.ReadFile(p)
			b.Write(c)
		}
		return nil
	})
	return b.String()
}

func hasCall(calls []string, prefix string) bool {
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func TestPostinstIsIdempotent(t *testing.T) {
	for _, systemd := range []bool{false, true} {
		name := "without systemd"
		if systemd {
			name = "with systemd running"
		}
		t.Run(name, func(t *testing.T) {
			e := newScriptEnv(t, systemd)
			first := e.run(t, "postinst", "configure", "")
			if !hasCall(first, "groupadd --system plasm") || !hasCall(first, "useradd --system --gid plasm") {
				t.Errorf("first configure made no plasm user and group: %q", first)
			}
			data := filepath.Join(e.root, "var/lib/plasm")
			fi, err := os.Stat(data)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("data directory: %v, mode %v; want 0700", err, fi)
			}
			if owner, _ := os.ReadFile(data + ".owner"); string(owner) != "plasm:plasm\n" {
				t.Errorf("data directory owner %q, want plasm:plasm", owner)
			}
			after := e.snapshot(t)

			second := e.run(t, "postinst", "configure", "")
			if hasCall(second, "groupadd") || hasCall(second, "useradd") {
				t.Errorf("second configure added a user or group again: %q", second)
			}
			if got := e.snapshot(t); got != after {
				t.Errorf("second configure changed the system:\nbefore:\n%s\nafter:\n%s", after, got)
			}
			for _, c := range append(first, second...) {
				if strings.HasPrefix(c, "systemctl") && (strings.Contains(c, "enable") || strings.Contains(c, " start")) {
					t.Errorf("installing must not enable or start the node: %q", c)
				}
			}
			if got := hasCall(first, "systemctl daemon-reload"); got != systemd {
				t.Errorf("daemon-reload called: %v, want %v (only when systemd runs)", got, systemd)
			}
			if hasCall(first, "systemctl try-restart") {
				t.Errorf("a first install restarted the service: %q", first)
			}
			// An upgrade restarts a running node, and only that.
			upgrade := e.run(t, "postinst", "configure", "1.0.0")
			if got := hasCall(upgrade, "systemctl try-restart plasmd.service"); got != systemd {
				t.Errorf("upgrade try-restart: %v, want %v: %q", got, systemd, upgrade)
			}
			if got := e.snapshot(t); got != after {
				t.Errorf("upgrade changed the system:\n%s", got)
			}
		})
	}
}

func TestRemoveAndPurge(t *testing.T) {
	e := newScriptEnv(t, true)
	e.run(t, "postinst", "configure", "")
	data := filepath.Join(e.root, "var/lib/plasm")
	if err := os.WriteFile(filepath.Join(data, "identity.key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	wants := filepath.Join(e.root, "etc/systemd/system/multi-user.target.wants/plasmd.service")
	if err := os.MkdirAll(filepath.Dir(wants), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/lib/systemd/system/plasmd.service", wants); err != nil {
		t.Fatal(err)
	}

	if calls := e.run(t, "prerm", "upgrade", "1.1.0"); len(calls) != 0 {
		t.Errorf("prerm upgrade: %q, want nothing (postinst restarts)", calls)
	}
	if calls := e.run(t, "prerm", "remove"); !hasCall(calls, "systemctl stop plasmd.service") {
		t.Errorf("prerm remove did not stop the node: %q", calls)
	}
	if calls := e.run(t, "postrm", "remove"); !hasCall(calls, "systemctl daemon-reload") {
		t.Errorf("postrm remove: %q", calls)
	}
	if _, err := os.Stat(filepath.Join(data, "identity.key")); err != nil {
		t.Errorf("remove (without purge) deleted the node's data: %v", err)
	}
	for i := 0; i < 2; i++ { // purging twice is harmless
		e.run(t, "postrm", "purge")
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("purge %d left %s: %v", i+1, data, err)
		}
		if _, err := os.Lstat(wants); !os.IsNotExist(err) {
			t.Errorf("purge %d left the enablement link: %v", i+1, err)
		}
	}
	if !strings.Contains(e.read(t, "passwd"), "plasm:") {
		t.Error("purge removed the plasm user; the documented policy keeps it")
	}
}

func TestScriptsRejectUnknownActions(t *testing.T) {
	e := newScriptEnv(t, false)
	for _, s := range []string{"postinst", "postrm"} {
		cmd := exec.Command("sh", filepath.Join(repoRoot(t), "packaging", "scripts", s), "bogus")
		cmd.Env = e.env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "unknown argument 'bogus'") {
			t.Errorf("%s bogus: %v %s", s, err, out)
		}
	}
}

package packaging

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phase-protocol/plasm/node/config"
)

func readUnit(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging", "plasmd.service"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unitSettings maps "Section.Key" to its values, in order.
func unitSettings(unit []byte) map[string][]string {
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, _ := strings.Cut(line, "=")
			out[section+"."+k] = append(out[section+"."+k], v)
		}
	}
	return out
}

func TestUnitLimitsFollowTheShippedConfig(t *testing.T) {
	cfg, err := config.Load(filepath.Join(repoRoot(t), "docs", "plasmd.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantMem, wantFD := Limits(cfg)
	mem, fd, err := UnitLimits(readUnit(t))
	if err != nil {
		t.Fatal(err)
	}
	if mem != wantMem || fd != wantFD {
		t.Errorf("unit has MemoryMax=%dM LimitNOFILE=%d; the shipped config gives MemoryMax=%dM LimitNOFILE=%d: update packaging/plasmd.service",
			mem, fd, wantMem, wantFD)
	}
}

func TestLimits(t *testing.T) {
	c := config.Default()
	mem, fd := Limits(c)
	if mem != 512*8+512+256+256+256+RuntimeHeadroomMB || fd != 1024+ExtraFDs {
		t.Errorf("Limits(default) = %d MiB, %d fds", mem, fd)
	}
	c.Jobs.MaxConcurrent, c.Jobs.MaxMemoryMB, c.Network.MaxFDs = 2, 1024, 4096
	mem, fd = Limits(c)
	if mem != 2048+512+256+256+256+RuntimeHeadroomMB || fd != 4096+ExtraFDs {
		t.Errorf("Limits(changed) = %d MiB, %d fds", mem, fd)
	}
	if _, _, err := UnitLimits([]byte("[Service]\nMemoryMax=infinity\n")); err == nil {
		t.Error("UnitLimits accepted a unit without numeric limits")
	}
}

func TestUnitRunsSandboxedAndUnprivileged(t *testing.T) {
	s := unitSettings(readUnit(t))
	for key, want := range map[string]string{
		"Service.User":                    "plasm",
		"Service.Group":                   "plasm",
		"Service.ExecStart":               "/usr/bin/plasmd start --config " + ConfigPath,
		"Service.Restart":                 "on-failure",
		"Service.StateDirectory":          "plasm",
		"Service.StateDirectoryMode":      "0700",
		"Service.StandardError":           "journal",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"Service.SystemCallFilter":        "@system-service",
		"Service.CapabilityBoundingSet":   "",
		"Install.WantedBy":                "multi-user.target",
	} {
		got, ok := s[key]
		if !ok || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if _, ok := s["Service.MemoryDenyWriteExecute"]; ok {
		t.Error("MemoryDenyWriteExecute breaks wazero's compiler")
	}
	// The data directory the unit manages is the shipped config's.
	cfg, err := config.Load(filepath.Join(repoRoot(t), "docs", "plasmd.example.json"))
	if err != nil {
		t.Fatal(err)
	}
	if "/var/lib/"+s["Service.StateDirectory"][0] != cfg.DataDir {
		t.Errorf("StateDirectory %q is not the config's data_dir %q", s["Service.StateDirectory"], cfg.DataDir)
	}
}

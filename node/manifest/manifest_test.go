package manifest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const goodHash = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func valid() Manifest {
	return Manifest{Version: CurrentVersion, ModuleHash: goodHash, CPUCores: 1, MemoryMB: 64, TimeoutSeconds: 30}
}

func TestMAN1_ValidateBoundaries(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Manifest)
		wantErr string // empty: valid
	}{
		{"baseline", func(*Manifest) {}, ""},
		{"cpu_cores min", func(m *Manifest) { m.CPUCores = 1 }, ""},
		{"cpu_cores max", func(m *Manifest) { m.CPUCores = 64 }, ""},
		{"cpu_cores zero", func(m *Manifest) { m.CPUCores = 0 }, "manifest: cpu_cores 0 out of range 1–64"},
		{"cpu_cores negative", func(m *Manifest) { m.CPUCores = -1 }, "manifest: cpu_cores -1 out of range 1–64"},
		{"cpu_cores over", func(m *Manifest) { m.CPUCores = 65 }, "manifest: cpu_cores 65 out of range 1–64"},
		{"memory_mb min", func(m *Manifest) { m.MemoryMB = 1 }, ""},
		{"memory_mb max", func(m *Manifest) { m.MemoryMB = 32768 }, ""},
		{"memory_mb zero", func(m *Manifest) { m.MemoryMB = 0 }, "manifest: memory_mb 0 out of range 1–32768"},
		{"memory_mb over", func(m *Manifest) { m.MemoryMB = 32769 }, "manifest: memory_mb 32769 out of range 1–32768"},
		{"timeout_seconds min", func(m *Manifest) { m.TimeoutSeconds = 1 }, ""},
		{"timeout_seconds max", func(m *Manifest) { m.TimeoutSeconds = 3600 }, ""},
		{"timeout_seconds zero", func(m *Manifest) { m.TimeoutSeconds = 0 }, "manifest: timeout_seconds 0 out of range 1–3600"},
		{"timeout_seconds over", func(m *Manifest) { m.TimeoutSeconds = 3601 }, "manifest: timeout_seconds 3601 out of range 1–3600"},
		{"version other digits", func(m *Manifest) { m.Version = "12.345" }, `manifest: version "12.345" is not "0.1"`},
		{"version empty", func(m *Manifest) { m.Version = "" }, `manifest: version "" is not "0.1"`},
		{"version no minor", func(m *Manifest) { m.Version = "1" }, `manifest: version "1" is not "0.1"`},
		{"version three parts", func(m *Manifest) { m.Version = "0.1.2" }, `version "0.1.2" is not "0.1"`},
		{"version letters", func(m *Manifest) { m.Version = "v0.1" }, `version "v0.1" is not "0.1"`},
		{"module_hash empty", func(m *Manifest) { m.ModuleHash = "" }, "manifest: module_hash is empty"},
		{"module_hash uppercase", func(m *Manifest) { m.ModuleHash = strings.ToUpper(goodHash) }, `is not "sha256:" followed by 64 lowercase hex digits`},
		{"module_hash upper hex", func(m *Manifest) { m.ModuleHash = "sha256:" + strings.ToUpper(goodHash[7:]) }, "64 lowercase hex"},
		{"module_hash short", func(m *Manifest) { m.ModuleHash = goodHash[:70] }, "64 lowercase hex"},
		{"module_hash long", func(m *Manifest) { m.ModuleHash = goodHash + "0" }, "64 lowercase hex"},
		{"module_hash other algo", func(m *Manifest) { m.ModuleHash = "sha512:" + goodHash[7:] }, "64 lowercase hex"},
		{"module_hash no prefix", func(m *Manifest) { m.ModuleHash = goodHash[7:] }, "64 lowercase hex"},
		{"module_hash non-hex", func(m *Manifest) { m.ModuleHash = goodHash[:70] + "g" }, "64 lowercase hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.mutate(&m)
			err := m.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)

			// Parse must agree with Validate on the same values.
			data, merr := json.Marshal(m)
			require.NoError(t, merr)
			_, perr := Parse(data)
			require.ErrorContains(t, perr, tt.wantErr)
		})
	}
}

func TestMAN1_ValidateReportsAllProblems(t *testing.T) {
	err := Manifest{Version: "x", ModuleHash: "nope", CPUCores: 0, MemoryMB: 0, TimeoutSeconds: 0}.Validate()
	require.Error(t, err)
	msg := err.Error()
	for _, field := range []string{"version", "module_hash", "cpu_cores", "memory_mb", "timeout_seconds"} {
		assert.Contains(t, msg, "manifest: "+field, "all problems must be listed")
	}
	assert.Len(t, strings.Split(msg, "\n"), 5)
}

func TestMAN1_Parse(t *testing.T) {
	good := `{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":128,"timeout_seconds":10}`
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"valid", good, ""},
		{"valid with whitespace", " \n" + good + "\n\t ", ""},
		{"unknown field", `{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":128,"timeout_seconds":10,"gpu":1}`, `manifest: field "gpu": unknown member`},
		{"missing cpu_cores", `{"version":"0.1","module_hash":"` + goodHash + `","memory_mb":128,"timeout_seconds":10}`, `manifest: field "cpu_cores": missing`},
		{"null memory_mb", `{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":null,"timeout_seconds":10}`, `manifest: field "memory_mb": must not be null`},
		{"empty object", `{}`, `manifest: field "version": missing`},
		{"string for int", `{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":"2","memory_mb":128,"timeout_seconds":10}`, `manifest: field "cpu_cores": must be an integer, got a string`},
		{"float for int", `{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":1.5,"timeout_seconds":10}`, `manifest: field "memory_mb": must be an integer in the signed 64-bit range without fraction or exponent, got "1.5"`},
		{"huge int", `{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":128,"timeout_seconds":99999999999999999999}`, `manifest: field "timeout_seconds": must be an integer`},
		{"number for string", `{"version":0.1,"module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":128,"timeout_seconds":10}`, `manifest: field "version": must be a string, got a number`},
		{"bool for hash", `{"version":"0.1","module_hash":true,"cpu_cores":2,"memory_mb":128,"timeout_seconds":10}`, `manifest: field "module_hash": must be a string, got a boolean`},
		{"array", `[]`, "manifest: want a JSON object, got an array"},
		{"trailing object", good + `{}`, "trailing data"},
		{"trailing garbage", good + ` x`, "trailing data"},
		{"empty", ``, "manifest: empty input"},
		{"truncated", good[:30], "manifest:"},
		{"syntax", `{"version":}`, "manifest: unexpected character"},
		{"range via parse", strings.Replace(good, `"cpu_cores":2`, `"cpu_cores":100`, 1), "manifest: cpu_cores 100 out of range 1–64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, Manifest{Version: "0.1", ModuleHash: goodHash, CPUCores: 2, MemoryMB: 128, TimeoutSeconds: 10}, m)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, Manifest{}, m)
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	m := valid()
	data, err := json.Marshal(m)
	require.NoError(t, err)
	assert.JSONEq(t, fmt.Sprintf(`{"version":"0.1","module_hash":%q,"cpu_cores":1,"memory_mb":64,"timeout_seconds":30}`, goodHash), string(data))
	back, err := Parse(data)
	require.NoError(t, err)
	assert.Equal(t, m, back)
}

func TestValidModuleHash(t *testing.T) {
	require.NoError(t, ValidModuleHash(goodHash))
	err := ValidModuleHash("sha256:\x00\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `\x00\n`, "odd bytes are escaped in messages")
	err = ValidModuleHash("sha256:" + strings.Repeat("a", 5000))
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 200, "long values are shortened in messages")
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":128,"timeout_seconds":10}`))
	f.Add([]byte(`{"version":"0.1","module_hash":"` + goodHash + `","cpu_cores":2,"memory_mb":128,"timeout_seconds":10,"x":1}`))
	f.Add([]byte(`{"version":"1","module_hash":"sha256:","cpu_cores":0,"memory_mb":-1,"timeout_seconds":1e9}`))
	f.Add([]byte(`{"cpu_cores":"2"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if verr := m.Validate(); verr != nil {
			t.Fatalf("Parse accepted an invalid manifest: %v", verr)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(again)
		if err != nil || back != m {
			t.Fatalf("round trip failed: %v (%+v vs %+v)", err, back, m)
		}
	})
}

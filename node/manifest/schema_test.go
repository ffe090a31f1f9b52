package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot walks up from the package directory to the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "go.mod not found above the test directory")
		dir = parent
	}
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile(filepath.Join(repoRoot(t), "schemas", "manifest.schema.json"))
	require.NoError(t, err)
	return sch
}

func validateJSON(t *testing.T, sch *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	return sch.Validate(inst)
}

func TestSchemaAcceptsWhatCodeEmits(t *testing.T) {
	sch := compileSchema(t)
	for _, m := range []Manifest{
		valid(),
		{Version: "0.1", ModuleHash: goodHash, CPUCores: phase.MinCPUCores, MemoryMB: phase.MinMemoryMB, TimeoutSeconds: phase.MinTimeoutSeconds},
		{Version: "0.1", ModuleHash: goodHash, CPUCores: phase.MaxCPUCores, MemoryMB: phase.MaxMemoryMB, TimeoutSeconds: phase.MaxTimeoutSeconds},
	} {
		data, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, validateJSON(t, sch, data), "%s", data)
	}
}

// The schema and Parse must agree on every boundary.
func TestSchemaAgreesWithParse(t *testing.T) {
	sch := compileSchema(t)
	base := map[string]any{"version": "0.1", "module_hash": goodHash, "cpu_cores": 2, "memory_mb": 128, "timeout_seconds": 10}
	tests := []struct {
		name  string
		field string
		value any
		drop  bool // remove the field instead of setting it
		ok    bool
	}{
		{"baseline", "", nil, false, true},
		{"cpu min", "cpu_cores", 1, false, true},
		{"cpu max", "cpu_cores", 64, false, true},
		{"cpu under", "cpu_cores", 0, false, false},
		{"cpu over", "cpu_cores", 65, false, false},
		{"mem max", "memory_mb", 32768, false, true},
		{"mem over", "memory_mb", 32769, false, false},
		{"mem under", "memory_mb", 0, false, false},
		{"timeout max", "timeout_seconds", 3600, false, true},
		{"timeout over", "timeout_seconds", 3601, false, false},
		{"timeout under", "timeout_seconds", 0, false, false},
		{"version bad", "version", "0.1.0", false, false},
		{"version number", "version", 0.1, false, false},
		{"hash upper", "module_hash", strings.ToUpper(goodHash), false, false},
		{"hash short", "module_hash", goodHash[:60], false, false},
		{"string int", "cpu_cores", "2", false, false},
		{"unknown field", "extra", 1, false, false},
		{"missing field", "memory_mb", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := map[string]any{}
			for k, v := range base {
				doc[k] = v
			}
			if tt.drop {
				delete(doc, tt.field)
			} else if tt.field != "" {
				doc[tt.field] = tt.value
			}
			data, err := json.Marshal(doc)
			require.NoError(t, err)
			schemaErr := validateJSON(t, sch, data)
			_, parseErr := Parse(data)
			if tt.ok {
				assert.NoError(t, schemaErr)
				assert.NoError(t, parseErr)
			} else {
				assert.Error(t, schemaErr, "schema must reject %s", data)
				assert.Error(t, parseErr, "Parse must reject %s", data)
			}
		})
	}
}

package receipt

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
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

func receiptSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := jsonschema.NewCompiler().Compile(filepath.Join(repoRoot(t), "schemas", "receipt.schema.json"))
	require.NoError(t, err)
	return sch
}

func schemaValidate(t *testing.T, sch *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	return sch.Validate(inst)
}

func TestSchemaAcceptsWhatCodeEmits(t *testing.T) {
	sch := receiptSchema(t)
	f := newFixture(t)
	require.NoError(t, schemaValidate(t, sch, marshal(t, f.receipt)))

	// Fresh random identities: the peer ID pattern must hold for any key.
	for range 20 {
		node, err := identity.Generate()
		require.NoError(t, err)
		r := *f.receipt
		r.NodePubkey = node.PublicKeyHex()
		r.NodePeerID = node.ID.String()
		r.Requester = ""
		r.Outcome, r.ExitCode = phase.OutcomeMemoryLimit, phase.NoExitCode
		require.NoError(t, r.Sign(node.Ed25519()))
		require.NoError(t, schemaValidate(t, sch, marshal(t, &r)), "node %s", node.ID)
	}
}

// Documents that Parse rejects for a reason the schema can express must be
// rejected by the schema as well.
func TestRCPT2_SchemaRejectsBrokenReceipts(t *testing.T) {
	sch := receiptSchema(t)
	f := newFixture(t)
	base := marshal(t, f.receipt)
	tests := []struct {
		name   string
		mutate func(doc map[string]any)
	}{
		{"extra field", func(d map[string]any) { d["extra"] = 1 }},
		{"missing field", func(d map[string]any) { delete(d, "nonce") }},
		{"extra limits field", func(d map[string]any) { d["limits"].(map[string]any)["cpu"] = 1 }},
		{"missing limits field", func(d map[string]any) { delete(d["limits"].(map[string]any), "stdout_cap") }},
		{"version", func(d map[string]any) { d["version"] = "2" }},
		{"short signature", func(d map[string]any) { d["signature"] = d["signature"].(string)[:126] }},
		{"uppercase nonce", func(d map[string]any) { d["nonce"] = strings.ToUpper(d["nonce"].(string)) }},
		{"hash prefix", func(d map[string]any) { d["stdout_hash"] = "md5:" + d["stdout_hash"].(string)[7:] }},
		{"pubkey length", func(d map[string]any) { d["node_pubkey"] = d["node_pubkey"].(string) + "00" }},
		{"outcome", func(d map[string]any) { d["outcome"] = "crashed" }},
		{"exit code without exit", func(d map[string]any) { d["outcome"] = "trapped" }},
		{"exited with -1", func(d map[string]any) { d["exit_code"] = -1 }},
		{"exit code too large", func(d map[string]any) { d["exit_code"] = int64(1) << 32 }},
		{"string int", func(d map[string]any) { d["wall_time_ms"] = "1" }},
		{"negative wall time", func(d map[string]any) { d["wall_time_ms"] = -1 }},
		{"job id chars", func(d map[string]any) { d["job_id"] = "a b" }},
		{"time without millis", func(d map[string]any) { d["started_at"] = "2026-11-26T08:30:00Z" }},
		{"time with offset", func(d map[string]any) { d["finished_at"] = "2026-11-26T08:30:00.123+00:00" }},
		{"limits memory zero", func(d map[string]any) { d["limits"].(map[string]any)["memory_mb"] = 0 }},
		{"limits timeout over", func(d map[string]any) { d["limits"].(map[string]any)["timeout_ms"] = 3_600_001 }},
		{"node peer id not ed25519", func(d map[string]any) { d["node_peer_id"] = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N" }},
		{"bool as string", func(d map[string]any) { d["deterministic"] = "false" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			require.NoError(t, json.Unmarshal(base, &doc))
			tt.mutate(doc)
			data := marshal(t, doc)
			assert.Error(t, schemaValidate(t, sch, data), "schema must reject %s", tt.name)
			_, err := Parse(data)
			assert.Error(t, err, "Parse must reject %s", tt.name)
		})
	}
}

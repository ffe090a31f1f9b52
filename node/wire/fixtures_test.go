package wire

import (
	"encoding/json"
	"strings"

	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
)

// Fixed values so that the golden vectors do not change between runs.
const (
	testNonce      = "8f14e45fceea167a5a36dedd4bea2543c4ca4238a0b923820dcc509a6f75849b"
	testModuleHash = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// testReceipt stands in for a receipt v1 object; this layer treats it as an
// opaque JSON object, so the signature here is not a real one.
var testReceipt = json.RawMessage(`{"exit_code":0,"job_id":"job-42","module_hash":"` + testModuleHash +
	`","nonce":"` + testNonce + `","outcome":"exited","signature":"` + strings.Repeat("00", 64) +
	`","version":"1","wall_time_ms":12}`)

func testManifest() manifest.Manifest {
	return manifest.Manifest{
		Version:        "0.1",
		ModuleHash:     testModuleHash,
		CPUCores:       1,
		MemoryMB:       64,
		TimeoutSeconds: 30,
	}
}

func testOffer() *Offer {
	return &Offer{
		Type:       TypeOffer,
		JobID:      "job-42",
		Nonce:      testNonce,
		Manifest:   testManifest(),
		ModuleSize: 8,
		StdinSize:  5,
		ArgsCount:  2,
	}
}

// namedMessage is one valid message of each kind, as the parser returns it
// (Type filled in, receipts compacted, arch normalised).
type namedMessage struct {
	name string
	msg  Message
}

func validMessages() []namedMessage {
	full := testOffer()
	full.Arch = "arm64"
	full.RequireArch = true
	full.Deterministic = true
	full.Seed = -7
	full.Progress = true
	return []namedMessage{
		{"offer", testOffer()},
		{"offer_all_fields", full},
		{"accepted", &Accepted{Type: TypeAccepted, HaveModule: false, Limits: AppliedLimits{MemoryMB: 64, TimeoutMS: 30000, StdoutCap: 1 << 20, StderrCap: 64 << 10}}},
		{"accepted_have_module", &Accepted{Type: TypeAccepted, HaveModule: true, Limits: AppliedLimits{MemoryMB: 1, TimeoutMS: 1, StdoutCap: 0, StderrCap: 0}}},
		{"rejected", &Rejected{Type: TypeRejected, Reason: phase.ReasonQueueFull, Detail: "4 jobs running, queue of 8 is full"}},
		{"payload", &Payload{Type: TypePayload, Args: []string{"hello", "wörld <&>"}}},
		{"payload_no_args", &Payload{Type: TypePayload, Args: []string{}}},
		{"result", &Result{Type: TypeResult, Outcome: phase.OutcomeExited, ExitCode: 0, StdoutSize: 12, StderrSize: 0, WallTimeMS: 12, QueueTimeMS: 3, Receipt: testReceipt}},
		{"result_trapped", &Result{Type: TypeResult, Outcome: phase.OutcomeTrapped, ExitCode: -1, Detail: "wasm error: unreachable", StdoutSize: 1 << 20, StderrSize: 0, StdoutTruncated: true, WallTimeMS: 0, QueueTimeMS: 0, Receipt: json.RawMessage(`{}`)}},
		{"error", &ErrorMsg{Type: TypeError, Code: phase.CodeHashMismatch, Detail: "module hashes to sha256:00…, manifest says sha256:e3…"}},
		{"accepted_progress", &Accepted{Type: TypeAccepted, HaveModule: false, Limits: AppliedLimits{MemoryMB: 64, TimeoutMS: 30000, StdoutCap: 1 << 20, StderrCap: 64 << 10}, ProgressMS: 2000}},
		{"progress", &Progress{Type: TypeProgress, ElapsedMS: 4000}},
		{"caps_request", &CapsRequest{Type: TypeCapsRequest}},
		{"caps", &CapsResponse{Type: TypeCaps, Record: json.RawMessage(`{"arch":"amd64","peer_id":"12D3KooW","seq":3}`)}},
	}
}

func messageByName(name string) Message {
	for _, nm := range validMessages() {
		if nm.name == name {
			return nm.msg
		}
	}
	panic("no fixture " + name)
}

package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// ProtocolJob and ProtocolCaps, as the spec names them.
const (
	ProtocolJob  = "/phase/job/1.0.0"
	ProtocolCaps = "/phase/caps/1.0.0"
)

// Job is what a case sends, built into bytes here from the spec's tables
// (spec-wire §4), not by the node's encoder.
type Job struct {
	Module         []byte
	Args           []string
	Stdin          []byte
	MemoryMB       int // 0: 16
	TimeoutSeconds int // 0: 5
	CPUCores       int // 0: 1
	Deterministic  bool
	Seed           int64
	Arch           string
	RequireArch    bool
	Progress       bool
	JobID, Nonce   string               // "": fresh
	Edit           func(map[string]any) // changes the offer object before it is sent
}

// NewNonce is 32 random bytes as lowercase hex.
func NewNonce() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "conf-" + hex.EncodeToString(b[:])
}

// Offer returns the offer object for j, with its job id and nonce filled.
func (j *Job) Offer() map[string]any {
	if j.JobID == "" {
		j.JobID = newJobID()
	}
	if j.Nonce == "" {
		j.Nonce = NewNonce()
	}
	mem, tmo, cores := j.MemoryMB, j.TimeoutSeconds, j.CPUCores
	if mem == 0 {
		mem = 16
	}
	if tmo == 0 {
		tmo = 5
	}
	if cores == 0 {
		cores = 1
	}
	o := map[string]any{
		"type": "offer", "job_id": j.JobID, "nonce": j.Nonce,
		"manifest": map[string]any{
			"version": "0.1", "module_hash": ref.Hash(j.Module),
			"cpu_cores": cores, "memory_mb": mem, "timeout_seconds": tmo,
		},
		"module_size": len(j.Module), "stdin_size": len(j.Stdin), "args_count": len(j.Args),
	}
	if j.Arch != "" {
		o["arch"] = j.Arch
	}
	if j.RequireArch {
		o["require_arch"] = true
	}
	if j.Deterministic {
		o["deterministic"] = true
	}
	if j.Seed != 0 {
		o["seed"] = j.Seed
	}
	if j.Progress {
		o["progress"] = true
	}
	if j.Edit != nil {
		j.Edit(o)
	}
	return o
}

// Marshal encodes a message object as JSON.
func Marshal(m any) string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Exchange is one job exchange as the case saw it.
type Exchange struct {
	C       *Conn
	H       host.Host
	Job     Job
	Answer  map[string]any // accepted, rejected or error
	Result  map[string]any
	Stdout  []byte
	Stderr  []byte
	Receipt ref.Receipt
}

// answerWait is how long a node may take to answer an offer.
const answerWait = 10 * time.Second

// Offer opens a stream from h (nil: a fresh host), sends j's offer and reads
// the answer.
func (t *T) Offer(h host.Host, j Job) *Exchange {
	if h == nil {
		h = t.Host()
	}
	x := &Exchange{H: h, Job: j}
	x.C = t.Open(h, ProtocolJob)
	o := x.Job.Offer()
	if err := x.C.Send(Marshal(o)); err != nil {
		t.Fatalf("sending the offer: %v", err)
	}
	x.Answer = x.C.Expect(answerWait, "accepted", "rejected", "error")
	return x
}

// Accepted ends the case unless the answer was accepted.
func (x *Exchange) Accepted(t *T) map[string]any {
	if x.Answer["type"] != "accepted" {
		t.Fatalf("expected accepted, got %s", compact(x.Answer))
	}
	return x.Answer
}

// SendPayload sends the payload, the module unless the node has it, and
// stdin, then half-closes (JOB-5, JOB-17).
func (x *Exchange) SendPayload(t *T) {
	acc := x.Accepted(t)
	args := x.Job.Args
	if args == nil {
		args = []string{}
	}
	b := ref.Frame([]byte(Marshal(map[string]any{"type": "payload", "args": args})))
	if have, _ := acc["have_module"].(bool); !have {
		b = append(b, ref.Frame(x.Job.Module)...)
	}
	b = append(b, ref.Frame(x.Job.Stdin)...)
	if err := x.C.Write(b); err != nil {
		t.Fatalf("sending the payload: %v", err)
	}
	x.C.CloseWrite()
}

// ReadResult reads the result (after any progress messages), the stdout
// and stderr frames, and checks the sizes against the result and the
// accepted caps (JOB-9, JOB-10).
func (x *Exchange) ReadResult(t *T, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for {
		m := x.C.Expect(time.Until(deadline), "progress", "result")
		if m["type"] == "result" {
			x.Result = m
			break
		}
	}
	lim, _ := x.Answer["limits"].(map[string]any)
	so, se := num(x.Result["stdout_size"]), num(x.Result["stderr_size"])
	if lim != nil && (so > num(lim["stdout_cap"]) || se > num(lim["stderr_cap"])) {
		t.Errorf("JOB-10: result sizes %d/%d over the accepted caps %v/%v", so, se, lim["stdout_cap"], lim["stderr_cap"])
	}
	var err error
	if x.Stdout, err = x.C.Frame(int(max(so, 0)), time.Until(deadline)); err != nil {
		t.Fatalf("stdout frame: %v", err)
	}
	if int64(len(x.Stdout)) != so {
		t.Errorf("stdout frame %d bytes, result says %d", len(x.Stdout), so)
	}
	if x.Stderr, err = x.C.Frame(int(max(se, 0)), time.Until(deadline)); err != nil {
		t.Fatalf("stderr frame: %v", err)
	}
	if int64(len(x.Stderr)) != se {
		t.Errorf("stderr frame %d bytes, result says %d", len(x.Stderr), se)
	}
}

// Verify checks the receipt as a client must (SPEC §3.4), against the peer
// dialled, this exchange's facts and the bytes received, and that the
// result says what the receipt says.
func (x *Exchange) Verify(t *T) ref.Receipt {
	raw, err := json.Marshal(x.Result["receipt"])
	if err != nil || x.Result["receipt"] == nil {
		t.Fatalf("result has no receipt")
	}
	key, err := ref.PeerKey(t.env.Target.ID.String())
	if err != nil {
		t.Fatalf("target peer ID: %v", err)
	}
	r, err := ref.VerifyReceipt(raw, ref.Expect{
		Signer: key, JobID: x.Job.JobID, Nonce: x.Job.Nonce, Requester: x.H.ID().String(),
		ModuleHash: ref.Hash(x.Job.Module), InputHash: ref.InputHash(x.Job.Args, x.Job.Stdin),
		Stdout: x.Stdout, Stderr: x.Stderr, CheckOutput: true,
	})
	if err != nil {
		t.Fatalf("receipt refused: %v", err)
	}
	for _, k := range []string{"outcome", "stdout_truncated", "stderr_truncated"} {
		if Marshal(x.Result[k]) != Marshal(r[k]) {
			t.Errorf("result %s %v, receipt %v", k, x.Result[k], r[k])
		}
	}
	if r.Str("outcome") == "exited" && num(x.Result["exit_code"]) != r.Int("exit_code") {
		t.Errorf("result exit_code %v, receipt %d", x.Result["exit_code"], r.Int("exit_code"))
	}
	x.Receipt = r
	return r
}

// Run does a whole honest exchange from a fresh host and verifies it.
func (t *T) Run(j Job) *Exchange {
	x := t.Offer(nil, j)
	x.SendPayload(t)
	x.ReadResult(t, 60*time.Second)
	x.Verify(t)
	return x
}

// num reads a JSON number (json.Number from ref.Decode).
func num(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err == nil {
			return i
		}
	case float64:
		return int64(n)
	}
	return -1 << 62
}

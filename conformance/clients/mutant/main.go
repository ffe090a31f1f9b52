// Command mutant is a Phase client written from the specification
// (conformance/ref) that follows the conformance suite's client contract,
// and that can be broken on purpose: PHASE_MUTANT names one check it skips.
// With no PHASE_MUTANT it is a complete client and must pass every client
// case; each variant must fail the cases of the requirement it breaks,
// which is how the suite proves its client side bites.
//
// Variants:
//
//	accept-all     no receipt, record, size or outcome check at all
//	skip-format    ignores the receipt's format check (RCPT-4)
//	skip-signer    ignores the signer check (RCPT-5)
//	skip-signature ignores the signature check (RCPT-6)
//	skip-job       ignores job_id, nonce and requester (RCPT-7)
//	skip-hashes    ignores module_hash and input_hash (RCPT-8)
//	skip-output    ignores stdout_hash and stderr_hash (RCPT-9)
//	trust-records  uses capability records without verifying them (CAP-5)
//	lax-frames     no frame caps, no announced-size checks (WIRE-8, WIRE-10, JOB-10)
//	no-deadline    waits for each frame as long as it takes (JOB-14)
//
// A skipped check that fails is ignored and ends verification there
// (the reference verifier stops at the first failed check).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/phase-protocol/plasm/conformance"
	"github.com/phase-protocol/plasm/conformance/ref"
)

type verdict struct {
	Verdict  string `json:"verdict"`
	Node     string `json:"node,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	Stdout   []byte `json:"stdout_base64,omitempty"`
	ExitCode *int64 `json:"exit_code,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// skips maps a variant to the receipt checks it ignores.
var skips = map[string][]string{
	"skip-format": {"format"}, "skip-signer": {"signer"}, "skip-signature": {"signature"},
	"skip-job": {"job_id", "nonce", "requester"}, "skip-hashes": {"module_hash", "input_hash"},
	"skip-output": {"stdout_hash", "stderr_hash"},
}

type client struct {
	variant  string
	h        host.Host
	job      conformance.Job
	deadline time.Time
}

func main() {
	v := run()
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func fail(verdictName, format string, a ...any) verdict {
	return verdict{Verdict: verdictName, Detail: fmt.Sprintf(format, a...)}
}

func run() verdict {
	c := &client{variant: os.Getenv("PHASE_MUTANT")}
	known := []string{"", "accept-all", "trust-records", "lax-frames", "no-deadline"}
	if _, ok := skips[c.variant]; !ok && !slices.Contains(known, c.variant) {
		return fail("error", "unknown PHASE_MUTANT %q", c.variant)
	}
	num := func(name string, def int) int {
		n, err := strconv.Atoi(os.Getenv(name))
		if err != nil {
			return def
		}
		return n
	}
	module, err := os.ReadFile(os.Getenv("PHASE_MODULE"))
	if err != nil {
		return fail("error", "PHASE_MODULE: %v", err)
	}
	var args []string
	if s := os.Getenv("PHASE_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &args); err != nil {
			return fail("error", "PHASE_ARGS: %v", err)
		}
	}
	var stdin []byte
	if p := os.Getenv("PHASE_STDIN"); p != "" {
		if stdin, err = os.ReadFile(p); err != nil {
			return fail("error", "PHASE_STDIN: %v", err)
		}
	}
	c.job = conformance.Job{Module: module, Args: args, Stdin: stdin, MemoryMB: num("PHASE_MEMORY_MB", 64),
		TimeoutSeconds: num("PHASE_TIMEOUT_SECONDS", 30), Deterministic: os.Getenv("PHASE_DETERMINISTIC") == "1"}
	c.deadline = time.Now().Add(time.Duration(num("PHASE_DEADLINE_SECONDS", c.job.TimeoutSeconds+60)) * time.Second)
	ctx := context.Background()
	if c.variant != "no-deadline" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
		defer cancel()
	}
	if c.h, err = libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics()); err != nil {
		return fail("error", "host: %v", err)
	}
	defer c.h.Close()
	cands, err := c.find(ctx)
	if err != nil {
		return fail("error", "find: %v", err)
	}
	var refusals []string
	for i, p := range cands {
		if i == 3 || ctx.Err() != nil {
			break
		}
		v, err := c.attempt(ctx, p)
		if err == nil {
			return v
		}
		refusals = append(refusals, fmt.Sprintf("%s: %v", p, err))
	}
	if len(refusals) == 0 {
		return fail("error", "no usable node")
	}
	return fail("refused", "%v", refusals)
}

// find asks the bootstrap peer's DHT for providers of the WASI runtime
// key and keeps those whose live record verifies and fits the job.
func (c *client) find(ctx context.Context) ([]peer.ID, error) {
	boot, err := ma.NewMultiaddr(os.Getenv("PHASE_BOOTSTRAP"))
	if err != nil {
		return nil, err
	}
	bi, err := peer.AddrInfoFromP2pAddr(boot)
	if err != nil {
		return nil, err
	}
	d, err := dht.New(c.h, dht.Mode(dht.ModeClient), dht.ProtocolPrefix("/phase"),
		dht.Validator(record.NamespacedValidator{"pk": record.PublicKeyValidator{}}))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := c.h.Connect(ctx, *bi); err != nil {
		return nil, err
	}
	for d.RoutingTable().Size() == 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	sum, _ := mh.Sum([]byte("/phase/cap/runtime/wasi_snapshot_preview1"), mh.SHA2_256, -1)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []peer.ID
	for ai := range d.FindProvidersAsync(fctx, cid.NewCidV1(cid.Raw, sum), 20) {
		c.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		rec, err := c.record(ctx, ai.ID)
		if err != nil {
			continue
		}
		if arch := os.Getenv("PHASE_ARCH"); os.Getenv("PHASE_REQUIRE_ARCH") == "1" && c.variant != "trust-records" && rec["arch"] != arch {
			continue
		}
		out = append(out, ai.ID)
	}
	return out, nil
}

// record fetches a node's live record (CAPS-2) and verifies it (CAPS-4).
func (c *client) record(ctx context.Context, id peer.ID) (conformance.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := c.h.NewStream(ctx, id, protocol.ID(conformance.ProtocolCaps))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write(ref.Frame([]byte(`{"type":"caps_request"}`))); err != nil {
		return nil, err
	}
	_ = s.CloseWrite()
	body, err := ref.ReadFrame(bufio.NewReader(s), 65536)
	if err != nil {
		return nil, err
	}
	m, err := ref.Object(body)
	if err != nil || m["type"] != "caps" {
		return nil, fmt.Errorf("not a caps message")
	}
	raw, _ := json.Marshal(m["record"])
	if c.variant == "trust-records" || c.variant == "accept-all" {
		r, _ := m["record"].(map[string]any)
		return conformance.Record(r), nil
	}
	return conformance.VerifyRecord(raw, id.String(), time.Now())
}

// attempt runs the job on one node and returns an accepted verdict, or
// why it was refused.
func (c *client) attempt(ctx context.Context, id peer.ID) (verdict, error) {
	lax := c.variant == "lax-frames" || c.variant == "accept-all"
	s, err := c.h.NewStream(ctx, id, protocol.ID(conformance.ProtocolJob))
	if err != nil {
		return verdict{}, err
	}
	defer s.Reset()
	if c.variant != "no-deadline" {
		_ = s.SetDeadline(c.deadline)
	}
	br := bufio.NewReader(s)
	ctlCap := 65536
	if lax {
		ctlCap = 1 << 30
	}
	msg := func() (map[string]any, error) {
		b, err := ref.ReadFrame(br, ctlCap)
		if err != nil {
			return nil, err
		}
		return ref.Object(b)
	}
	j := c.job // a fresh job id and nonce per attempt (JOB-15)
	j.JobID, j.Nonce = "", ""
	if _, err := s.Write(ref.Frame([]byte(conformance.Marshal(j.Offer())))); err != nil {
		return verdict{}, err
	}
	acc, err := msg()
	if err != nil {
		return verdict{}, fmt.Errorf("answer: %w", err)
	}
	if acc["type"] != "accepted" {
		return verdict{}, fmt.Errorf("answer %v", acc["type"])
	}
	lim, _ := acc["limits"].(map[string]any)
	args := j.Args
	if args == nil {
		args = []string{}
	}
	out := ref.Frame([]byte(conformance.Marshal(map[string]any{"type": "payload", "args": args})))
	if acc["have_module"] != true {
		out = append(out, ref.Frame(j.Module)...)
	}
	out = append(out, ref.Frame(j.Stdin)...)
	if _, err := s.Write(out); err != nil {
		return verdict{}, err
	}
	_ = s.CloseWrite()
	var res map[string]any
	for {
		if res, err = msg(); err != nil {
			return verdict{}, fmt.Errorf("result: %w", err)
		}
		if res["type"] != "progress" {
			break
		}
	}
	if res["type"] != "result" {
		return verdict{}, fmt.Errorf("got %v where result was due", res["type"])
	}
	size := func(k, capName string) (int, error) {
		n, err := ref.Integer(asNumber(res[k]))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %v", k, res[k])
		}
		c, err := ref.Integer(asNumber(lim[capName]))
		if !lax && (err != nil || n > c) {
			return 0, fmt.Errorf("JOB-10: %s %d over %s %v", k, n, capName, lim[capName])
		}
		return int(n), nil
	}
	soSize, err := size("stdout_size", "stdout_cap")
	if err != nil {
		return verdict{}, err
	}
	seSize, err := size("stderr_size", "stderr_cap")
	if err != nil {
		return verdict{}, err
	}
	frame := func(n int) ([]byte, error) {
		if lax {
			return ref.ReadFrame(br, 1<<30)
		}
		b, err := ref.ReadFrame(br, n)
		if err == nil && len(b) != n {
			err = fmt.Errorf("frame of %d bytes, announced %d", len(b), n)
		}
		return b, err
	}
	stdout, err := frame(soSize)
	if err != nil {
		return verdict{}, fmt.Errorf("stdout: %w", err)
	}
	stderr, err := frame(seSize)
	if err != nil {
		return verdict{}, fmt.Errorf("stderr: %w", err)
	}
	if !lax {
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			return verdict{}, fmt.Errorf("bytes or no end after the stderr frame: %v", err)
		}
	}
	outcome, _ := res["outcome"].(string)
	ec, _ := ref.Integer(asNumber(res["exit_code"]))
	v := verdict{Verdict: "accepted", Node: id.String(), Outcome: outcome, Stdout: stdout, ExitCode: &ec}
	if c.variant == "accept-all" {
		return v, nil
	}
	if outcome == "hash_mismatch" {
		return verdict{}, errors.New("JOB-8: hash_mismatch")
	}
	raw, err := json.Marshal(res["receipt"])
	if err != nil || res["receipt"] == nil {
		return verdict{}, errors.New("no receipt")
	}
	key, err := ref.PeerKey(id.String())
	if err != nil {
		return verdict{}, err
	}
	rc, err := ref.VerifyReceipt(raw, ref.Expect{Signer: key, JobID: j.JobID, Nonce: j.Nonce, Requester: c.h.ID().String(),
		ModuleHash: ref.Hash(j.Module), InputHash: ref.InputHash(j.Args, j.Stdin), Stdout: stdout, Stderr: stderr, CheckOutput: true})
	var ce *ref.CheckError
	if err != nil && !(errors.As(err, &ce) && slices.Contains(skips[c.variant], ce.Check)) {
		return verdict{}, fmt.Errorf("receipt: %w", err)
	}
	if err == nil && (rc.Str("outcome") != outcome || outcome == "exited" && rc.Int("exit_code") != ec) {
		return verdict{}, errors.New("result and receipt disagree")
	}
	return v, nil
}

func asNumber(v any) json.Number {
	n, _ := v.(json.Number)
	return n
}

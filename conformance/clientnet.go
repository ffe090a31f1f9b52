package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/phase-protocol/plasm/conformance/ref"
	"github.com/phase-protocol/plasm/conformance/spec"
)

// The client side of the suite plays a small network: one DHT peer the
// client bootstraps from, and nodes that advertise themselves there and
// answer the job protocol — honestly, or with one lie each. Every byte a
// played node sends is built here from the spec (conformance/ref), not by
// Plasm's wire, session or receipt packages.

// Script is how one played node behaves. The zero Script is an honest
// node.
type Script struct {
	// Record changes the capability record before it is signed;
	// RecordSigned after (a bad signature, say). RecordKey signs it with
	// another key than the node's own.
	Record       func(rec map[string]any)
	RecordSigned func(rec map[string]any)
	RecordKey    ed25519.PrivateKey

	// Reject answers the offer with rejected and this reason.
	Reject string
	// StallAt stops answering at a step: "offer" (no answer),
	// "payload" (accepted, then nothing), "result" (the job ran, no
	// result), "stdout" (result, no stdout frame), "mid-stdout" (half
	// the stdout frame), "stderr" (result and stdout, no stderr frame).
	StallAt string
	// CloseAt closes the stream at the same steps instead of stalling.
	CloseAt string

	HaveModule bool // answer have_module: true
	ProgressMS int  // promise progress and send it while "running"
	RunFor     time.Duration

	Accepted func(acc map[string]any)
	// Receipt changes the receipt before it is signed; Signed after.
	Receipt func(rc map[string]any, x *played)
	Signed  func(rc map[string]any)
	// ReceiptKey signs the receipt with another key (node_pubkey and
	// node_peer_id stay the node's unless Receipt changes them).
	ReceiptKey ed25519.PrivateKey
	Result     func(res map[string]any)
	// Legacy answers with a v0.1 receipt signed the v0.1 way by the
	// node's own key (SPEC §3.5): never proof of a run (LEG-2).
	Legacy bool
	// Output changes the stdout and stderr bytes sent, after the receipt
	// was made over the true ones.
	Output func(stdout, stderr []byte) ([]byte, []byte)
	// Wire replaces the bytes written after accepted: the result, stdout
	// and stderr frames (frame-level lies).
	Wire func(result, stdout, stderr []byte) []byte
}

// played is one exchange as a played node saw it: what the receipt
// builder may use.
type played struct {
	Offer     map[string]any
	Requester string
	Args      []string
	Stdin     []byte
	Module    []byte
}

// playNode is a played node: its host, key and script, and what clients
// did to it.
type playNode struct {
	h      host.Host
	key    ed25519.PrivateKey
	id     string
	script Script
	net    *clientNet

	mu      sync.Mutex
	offers  int
	results int // result messages sent
}

// clientNet is a case's network.
type clientNet struct {
	t     *T
	boot  host.Host
	d     *dht.IpfsDHT
	nodes []*playNode

	module []byte // what the case's job sends, to check offers against

	mu     sync.Mutex
	nonces map[string]bool
	stops  chan struct{}
}

// permissive accepts every value, so the suite's DHT holds lying records
// too: the client under test must check them itself (CAP-5).
type permissive struct{}

func (permissive) Validate(string, []byte) error        { return nil }
func (permissive) Select(string, [][]byte) (int, error) { return 0, nil }

// newKey is a fresh Ed25519 key, as libp2p and as crypto/ed25519 see it.
func newKey() (crypto.PrivKey, ed25519.PrivateKey, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	raw, err := priv.Raw()
	if err != nil {
		return nil, nil, err
	}
	return priv, ed25519.PrivateKey(raw), nil
}

func (t *T) loopbackHost(priv crypto.PrivKey) host.Host {
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatalf("host: %v", err)
	}
	t.mu.Lock()
	t.hosts = append(t.hosts, h)
	t.mu.Unlock()
	return h
}

// newClientNet starts the DHT peer and one played node per script.
func (t *T) newClientNet(module []byte, scripts ...Script) *clientNet {
	n := &clientNet{t: t, module: module, nonces: map[string]bool{}, stops: make(chan struct{})}
	t.Cleanup(func() { close(n.stops) })
	bp, _, err := newKey()
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	n.boot = t.loopbackHost(bp)
	n.d, err = dht.New(n.boot, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/phase"),
		dht.Validator(record.NamespacedValidator{"pk": record.PublicKeyValidator{}, "phase-caps": permissive{}}))
	if err != nil {
		t.Fatalf("the suite's DHT: %v", err)
	}
	t.Cleanup(func() { _ = n.d.Close() })
	for _, s := range scripts {
		n.add(s)
	}
	return n
}

// Bootstrap is the DHT peer's address for the client.
func (n *clientNet) Bootstrap() string {
	return n.boot.Addrs()[0].String() + "/p2p/" + n.boot.ID().String()
}

// providerKey is SPEC CAP-3's CID: CIDv1 raw of the SHA-256 of the key.
func providerKey(key string) cid.Cid {
	sum, _ := mh.Sum([]byte(key), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, sum)
}

func (n *clientNet) add(s Script) *playNode {
	t := n.t
	priv, key, err := newKey()
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	p := &playNode{h: t.loopbackHost(priv), key: key, script: s, net: n}
	p.id = p.h.ID().String()
	n.nodes = append(n.nodes, p)
	rec := p.record()
	p.h.SetStreamHandler(ProtocolCaps, func(st network.Stream) { p.serveCaps(st, rec) })
	p.h.SetStreamHandler(ProtocolJob, p.serveJob)
	ai := peer.AddrInfo{ID: p.h.ID(), Addrs: p.h.Addrs()}
	n.boot.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	arch, _ := rec["arch"].(string)
	for _, k := range []string{"/phase/cap/runtime/wasi_snapshot_preview1", "/phase/cap/arch/" + arch} {
		if err := n.d.ProviderStore().AddProvider(t.ctx, providerKey(k).Hash(), ai); err != nil {
			t.Fatalf("provider record: %v", err)
		}
	}
	raw, _ := json.Marshal(rec)
	// PutValue stores locally first and then looks for closer peers,
	// which a one-peer DHT has none of: the local copy is what counts.
	pctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	_ = n.d.PutValue(pctx, "/phase-caps/"+p.id, raw)
	cancel()
	return p
}

// signObject adds the signature member: Ed25519 over prefix and the
// canonical JSON of m without it (SPEC §3.3, CAP-1).
func signObject(m map[string]any, prefix string, key ed25519.PrivateKey) error {
	delete(m, "signature")
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	v, err := ref.Decode(raw)
	if err != nil {
		return err
	}
	c, err := ref.Canonical(v)
	if err != nil {
		return err
	}
	m["signature"] = hex.EncodeToString(ed25519.Sign(key, append([]byte(prefix), c...)))
	return nil
}

// record is the node's signed capability record (SPEC §4.2).
func (p *playNode) record() map[string]any {
	now := time.Now()
	rec := map[string]any{
		"version": 1, "peer_id": p.id, "arch": "amd64", "os": "linux", "cpu_cores": 4, "memory_mb": 1024,
		"runtime": "conformance", "runtime_version": "v1", "abis": []string{"wasi_snapshot_preview1"},
		"limits": map[string]any{"max_module_bytes": 1 << 20, "max_stdin_bytes": 1 << 16, "max_memory_mb": 256,
			"max_timeout_seconds": 60, "max_concurrent_jobs": 8, "max_jobs_per_peer": 8},
		"load": map[string]any{"running_jobs": 0, "queued_jobs": 0},
		"seq":  now.UnixMicro(), "issued_at": now.Unix(), "expires_at": now.Add(10 * time.Minute).Unix(),
	}
	if p.script.Record != nil {
		p.script.Record(rec)
	}
	key := p.key
	if p.script.RecordKey != nil {
		key = p.script.RecordKey
	}
	if err := signObject(rec, "phase-caps:v1:", key); err != nil {
		p.net.t.Fatalf("signing a record: %v", err)
	}
	if p.script.RecordSigned != nil {
		p.script.RecordSigned(rec)
	}
	return rec
}

func (p *playNode) serveCaps(s network.Stream, rec map[string]any) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ref.ReadFrame(bufio.NewReader(s), 65536); err != nil {
		_ = s.Reset()
		return
	}
	_, _ = s.Write(ref.Frame([]byte(Marshal(map[string]any{"type": "caps", "record": rec}))))
}

// note records what a played node saw or did, for the report.
func (p *playNode) note(format string, a ...any) {
	p.net.t.Note("node %s: %s", shortID(p.id), fmt.Sprintf(format, a...))
}

// violation records a client's breach of the protocol: the case fails.
func (p *playNode) violation(req, format string, a ...any) {
	p.net.t.Errorf("%s: the client %s", req, fmt.Sprintf(format, a...))
}

func shortID(id string) string {
	if len(id) > 10 {
		return "…" + id[len(id)-6:]
	}
	return id
}

var (
	nonceRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	jobIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

// stall waits until the case ends.
func (p *playNode) stall(s network.Stream, step string) {
	p.note("stalls at %s", step)
	select {
	case <-p.net.stops:
	case <-p.net.t.ctx.Done():
	}
	_ = s.Reset()
}

// serveJob answers one job stream by the script.
func (p *playNode) serveJob(s network.Stream) {
	defer func() { _ = s.Close() }()
	sc := p.script
	br := bufio.NewReader(s)
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	body, err := ref.ReadFrame(br, 65536)
	if err != nil {
		p.violation("JOB-2", "opened a job stream and sent no offer frame: %v", err)
		return
	}
	offer, err := ref.Object(body)
	if err != nil || offer["type"] != "offer" {
		p.violation("JOB-2", "sent a first frame that is not an offer: %s", shorten(string(body), 200))
		return
	}
	p.mu.Lock()
	p.offers++
	p.mu.Unlock()
	x := &played{Offer: offer, Requester: s.Conn().RemotePeer().String()}
	jobID, _ := offer["job_id"].(string)
	nonce, _ := offer["nonce"].(string)
	p.note("offer %s nonce %.12s…", jobID, nonce)
	if !jobIDRE.MatchString(jobID) {
		p.violation("WIRE-21", "sent job_id %q", jobID)
	}
	if !nonceRE.MatchString(nonce) {
		p.violation("JOB-15", "sent nonce %q, not 64 lowercase hex", nonce)
	}
	p.net.mu.Lock()
	seen := p.net.nonces[nonce]
	p.net.nonces[nonce] = true
	p.net.mu.Unlock()
	if seen {
		p.violation("JOB-15", "reused nonce %s", nonce)
	}
	man, _ := offer["manifest"].(map[string]any)
	memMB, tmo := num(man["memory_mb"]), num(man["timeout_seconds"])
	if man["module_hash"] != ref.Hash(p.net.module) || num(offer["module_size"]) != int64(len(p.net.module)) {
		p.violation("RCPT-8", "offered module_hash %v / module_size %v for a %d-byte module hashing to %s",
			man["module_hash"], offer["module_size"], len(p.net.module), ref.Hash(p.net.module))
	}
	if sc.Reject != "" {
		p.note("rejects: %s", sc.Reject)
		_, _ = s.Write(ref.Frame([]byte(Marshal(map[string]any{"type": "rejected", "reason": sc.Reject, "detail": "played node"}))))
		_ = s.CloseWrite()
		_, _ = io.Copy(io.Discard, io.LimitReader(br, 1<<20))
		return
	}
	switch {
	case sc.StallAt == "offer":
		p.stall(s, "offer")
		return
	case sc.CloseAt == "offer":
		p.note("closes the stream before answering")
		_ = s.Reset()
		return
	}
	limits := map[string]any{"memory_mb": min(max(memMB, 1), 256), "timeout_ms": min(max(tmo, 1), 60) * 1000,
		"stdout_cap": 4096, "stderr_cap": 1024}
	acc := map[string]any{"type": "accepted", "have_module": sc.HaveModule, "limits": limits}
	if sc.ProgressMS > 0 && offer["progress"] == true {
		acc["progress_ms"] = sc.ProgressMS
	}
	if sc.Accepted != nil {
		sc.Accepted(acc)
	}
	if _, err := s.Write(ref.Frame([]byte(Marshal(acc)))); err != nil {
		return
	}
	switch {
	case sc.StallAt == "payload":
		p.stall(s, "payload (after accepted)")
		return
	case sc.CloseAt == "payload":
		p.note("closes the stream after accepted")
		_ = s.Reset()
		return
	}
	// payload, module (unless have_module), stdin (JOB-5)
	body, err = ref.ReadFrame(br, 65536)
	if err != nil {
		// A client may abandon an exchange; an honest case then fails on
		// its verdict.
		p.note("no payload after accepted: %v", err)
		return
	}
	pay, err := ref.Object(body)
	if err != nil || pay["type"] != "payload" {
		p.violation("JOB-5", "sent %s where payload was due", shorten(string(body), 200))
		return
	}
	arr, _ := pay["args"].([]any)
	for _, a := range arr {
		s, _ := a.(string)
		x.Args = append(x.Args, s)
	}
	if int64(len(x.Args)) != num(offer["args_count"]) {
		p.violation("JOB-7", "sent %d args for args_count %v", len(x.Args), offer["args_count"])
	}
	if sc.HaveModule {
		x.Module = p.net.module
	} else if x.Module, err = ref.ReadFrame(br, 2<<20); err != nil {
		p.violation("JOB-5", "sent no module frame: %v", err)
		return
	}
	if !bytes.Equal(x.Module, p.net.module) {
		p.violation("JOB-5", "sent %d module bytes, not the job's module", len(x.Module))
	}
	if x.Stdin, err = ref.ReadFrame(br, 2<<20); err != nil {
		p.violation("JOB-5", "sent no stdin frame: %v", err)
		return
	}
	if int64(len(x.Stdin)) != num(offer["stdin_size"]) {
		p.violation("JOB-6", "sent a %d-byte stdin frame for stdin_size %v (with have_module %v)", len(x.Stdin), offer["stdin_size"], sc.HaveModule)
	}
	started := time.Now().UTC()
	if sc.ProgressMS > 0 && acc["progress_ms"] != nil {
		end := time.Now().Add(sc.RunFor)
		for time.Now().Before(end) {
			time.Sleep(time.Duration(sc.ProgressMS) * time.Millisecond / 2)
			_, _ = s.Write(ref.Frame([]byte(Marshal(map[string]any{"type": "progress", "elapsed_ms": time.Since(started).Milliseconds()}))))
		}
	} else if sc.RunFor > 0 {
		time.Sleep(sc.RunFor)
	}
	switch {
	case sc.StallAt == "result":
		p.stall(s, "result (after the payload)")
		return
	case sc.CloseAt == "result":
		p.note("closes the stream before the result")
		_ = s.Reset()
		return
	}
	out := playRun(x.Module, x.Args, x.Stdin)
	finished := time.Now().UTC()
	stdout, stdoutTrunc := clip(out.stdout, 4096)
	stderr, stderrTrunc := clip(out.stderr, 1024)
	rc := map[string]any{
		"version": "1", "module_hash": ref.Hash(x.Module), "exit_code": out.exitCode, "wall_time_ms": finished.Sub(started).Milliseconds(),
		"timestamp": finished.Unix(), "node_pubkey": hex.EncodeToString(p.key.Public().(ed25519.PublicKey)),
		"job_id": jobID, "nonce": nonce, "requester": x.Requester, "node_peer_id": p.id,
		"input_hash": ref.InputHash(x.Args, x.Stdin), "stdout_hash": ref.Hash(stdout), "stderr_hash": ref.Hash(stderr),
		"stdout_truncated": stdoutTrunc, "stderr_truncated": stderrTrunc, "outcome": out.outcome,
		"deterministic": offer["deterministic"] == true, "limits": receiptLimits(acc),
		"started_at": started.Format("2006-01-02T15:04:05.000Z"), "finished_at": finished.Format("2006-01-02T15:04:05.000Z"),
	}
	if sc.Receipt != nil {
		sc.Receipt(rc, x)
	}
	key := p.key
	if sc.ReceiptKey != nil {
		key = sc.ReceiptKey
	}
	if err := signObject(rc, "phase-receipt:v1:", key); err != nil {
		p.note("cannot sign: %v", err)
		_ = s.Reset()
		return
	}
	if sc.Legacy {
		legacy(p.key)(rc)
	}
	if sc.Signed != nil {
		sc.Signed(rc)
	}
	if sc.Output != nil {
		stdout, stderr = sc.Output(stdout, stderr)
	}
	res := map[string]any{"type": "result", "outcome": out.outcome, "exit_code": out.exitCode,
		"stdout_size": len(stdout), "stderr_size": len(stderr), "stdout_truncated": stdoutTrunc, "stderr_truncated": stderrTrunc,
		"wall_time_ms": rc["wall_time_ms"], "queue_time_ms": 0, "receipt": rc}
	if sc.Result != nil {
		sc.Result(res)
	}
	resFrame := []byte(Marshal(res))
	var wire []byte
	if sc.Wire != nil {
		wire = sc.Wire(resFrame, stdout, stderr)
	} else {
		wire = ref.Frames(resFrame, stdout, stderr)
	}
	p.mu.Lock()
	p.results++
	p.mu.Unlock()
	cut := -1 // bytes of wire to send before stalling or closing
	step := sc.StallAt
	if step == "" {
		step = sc.CloseAt
	}
	resLen := len(ref.Frame(resFrame))
	switch step {
	case "stdout":
		cut = resLen
	case "mid-stdout":
		cut = resLen + 1 + len(stdout)/2
	case "stderr":
		cut = resLen + len(ref.Frame(stdout))
	}
	if cut >= 0 && cut < len(wire) {
		_, _ = s.Write(wire[:cut])
		if sc.StallAt != "" {
			p.stall(s, step)
		} else {
			p.note("closes the stream at %s", step)
			_ = s.Close()
		}
		return
	}
	if _, err := s.Write(wire); err != nil {
		return
	}
	_ = s.CloseWrite()
	// JOB-17: the client has nothing more to send; anything is a breach.
	_ = s.SetReadDeadline(time.Now().Add(2 * time.Second))
	if b, err := br.ReadByte(); err == nil {
		p.violation("JOB-17", "sent bytes after the stdin frame (0x%02x…)", b)
	}
}

// receiptLimits are the applied limits as accepted announced them, the
// four members a receipt has (and no others, RCPT-2).
func receiptLimits(acc map[string]any) map[string]any {
	lim, _ := acc["limits"].(map[string]any)
	out := map[string]any{}
	for _, k := range []string{"memory_mb", "timeout_ms", "stdout_cap", "stderr_cap"} {
		out[k] = lim[k]
	}
	return out
}

func clip(b []byte, n int) ([]byte, bool) {
	if len(b) > n {
		return b[:n], true
	}
	return b, false
}

// playOutput is what a played node says a module did. It knows the
// published test modules by their documented behaviour (examples/wat), so
// it needs no runtime.
type playOutput struct {
	outcome        string
	exitCode       int64
	stdout, stderr []byte
}

func playRun(module []byte, args []string, stdin []byte) playOutput {
	switch ref.Hash(module) {
	case hashOf("echo"):
		var b bytes.Buffer
		b.WriteString("job\n")
		for _, a := range args {
			b.WriteString(a + "\n")
		}
		b.Write(stdin)
		return playOutput{outcome: "exited", stdout: b.Bytes()}
	case hashOf("exit7"):
		return playOutput{outcome: "exited", exitCode: 7, stderr: []byte("bye")}
	case hashOf("trap"):
		return playOutput{outcome: "trapped", exitCode: -1}
	case hashOf("tiny"):
		return playOutput{outcome: "exited", stdout: []byte("ok\n")}
	case hashOf("flood"):
		// It writes forever: cut at the cap, stopped at the deadline.
		return playOutput{outcome: "timeout", exitCode: -1, stdout: make([]byte, 1<<16)}
	}
	return playOutput{outcome: "invalid_module", exitCode: -1}
}

// hashOf is the hash of a published test module ("" if there is none).
func hashOf(name string) string {
	b, err := spec.File("examples/wat/" + name + ".wasm")
	if err != nil {
		return ""
	}
	return ref.Hash(b)
}

// errNoVerdict is a client that printed no verdict line.
var errNoVerdict = errors.New("no verdict line")

// offersTo is how many offers the played nodes got, by node index.
func (n *clientNet) offersTo(i int) int {
	p := n.nodes[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offers
}

func (n *clientNet) nodeIDs() []string {
	var out []string
	for _, p := range n.nodes {
		out = append(out, p.id)
	}
	return out
}

func (n *clientNet) indexOf(id string) int {
	return slices.Index(n.nodeIDs(), id)
}

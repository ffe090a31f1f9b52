package conformance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// Client cases: the suite plays one or more nodes against a client under
// test. A bad case's played nodes all lie, and the client must answer
// refused or error; where a case also plays an honest node, the client may
// instead retry there and accept the honest result (and only that). A good
// case's client must accept the honest result, byte for byte.

type clientWant int

const (
	wantAccept clientWant = iota // the honest node's result, exactly
	wantRefuse                   // refused or error (or the honest node's result, when one is played)
)

// clientCase is one client case: the nodes it plays, the job, what the
// client must answer.
type clientCase struct {
	name   string
	reqs   []string
	nodes  []Script
	honest int // index of the honest node, -1 for none
	job    ClientJob
	want   clientWant
	// unused: nodes the client must not even offer the job to (their
	// records fail verification or do not fit the job, CAP-5).
	unused []int
}

func (cc clientCase) toCase() Case {
	return Case{Name: "client/" + cc.name, Reqs: cc.reqs, Side: SideClient, Run: func(t *T) { cc.run(t) }}
}

func (cc clientCase) run(t *T) {
	job := cc.job
	if job.Module == "" {
		job.Module = "echo"
	}
	net := t.newClientNet(t.Module(job.Module), cc.nodes...)
	for i, id := range net.nodeIDs() {
		role := "lying"
		if i == cc.honest {
			role = "honest"
		}
		t.Note("played node %d (%s): %s", i, role, id)
	}
	v := t.runClient(net, job)
	for _, i := range cc.unused {
		if k := net.offersTo(i); k > 0 {
			t.Errorf("CAP-5: the client offered the job %d time(s) to node %d, whose record it must not use", k, i)
		}
	}
	accepted := v.Verdict == VerdictAccepted
	switch {
	case cc.want == wantAccept && !accepted:
		t.Errorf("RCPT-10: the client did not accept an honest, verifiable result: %s %s", v.Verdict, shorten(v.Detail, 300))
	case cc.want == wantRefuse && accepted && cc.honest < 0:
		t.Errorf("RCPT-10: the client accepted a bad result from %s (outcome %s, stdout %q)", v.Node, v.Outcome, shorten(string(v.Stdout), 80))
	case accepted:
		cc.checkHonest(t, net, job, v)
	}
}

// checkHonest: an accepted verdict must be the honest node's true result.
func (cc clientCase) checkHonest(t *T, net *clientNet, job ClientJob, v ClientVerdict) {
	if cc.honest < 0 || v.Node != net.nodes[cc.honest].id {
		t.Errorf("RCPT-10: the client accepted a result from %s, not from the honest node %s", v.Node, net.nodes[cc.honest].id)
		return
	}
	out := playRun(t.Module(job.Module), job.Args, job.Stdin)
	stdout, _ := clip(out.stdout, 4096)
	if !bytes.Equal(v.Stdout, stdout) {
		t.Errorf("RCPT-9: the client reported stdout %q, the node sent %q", shorten(string(v.Stdout), 100), shorten(string(stdout), 100))
	}
	if v.Outcome != out.outcome {
		t.Errorf("the client reported outcome %q, the node's receipt says %q", v.Outcome, out.outcome)
	}
	if out.outcome == "exited" && (v.ExitCode == nil || *v.ExitCode != out.exitCode) {
		t.Errorf("the client reported exit_code %v, the node's receipt says %d", v.ExitCode, out.exitCode)
	}
}

// otherKey is a fresh key that is not the played node's.
func otherKey() ed25519.PrivateKey {
	_, k, err := newKey()
	if err != nil {
		panic(err)
	}
	return k
}

// flipHex changes one hex digit of member k.
func flipHex(m map[string]any, k string) {
	s := []byte(m[k].(string))
	i := len(s) / 2
	if s[i] == '0' {
		s[i] = '1'
	} else {
		s[i] = '0'
	}
	m[k] = string(s)
}

func otherHash(label string) string { return ref.Hash([]byte("not the real " + label)) }

// legacy turns a receipt into a v0.1 one, signed the v0.1 way by key
// (SPEC §3.5).
func legacy(key ed25519.PrivateKey) func(map[string]any) {
	return func(rc map[string]any) {
		keep := map[string]bool{"version": true, "module_hash": true, "exit_code": true, "wall_time_ms": true, "timestamp": true, "node_pubkey": true}
		for k := range rc {
			if !keep[k] {
				delete(rc, k)
			}
		}
		rc["version"] = "0.1"
		msg := fmt.Sprintf("0.1|%s|%v|%v|%v", rc["module_hash"], rc["exit_code"], rc["wall_time_ms"], rc["timestamp"])
		sum := sha256.Sum256([]byte(msg))
		rc["signature"] = hex.EncodeToString(ed25519.Sign(key, sum[:]))
	}
}

// frameWith rebuilds the result, stdout and stderr frames after f changes
// the result frame's body text.
func frameWith(f func(result string) string) func(result, stdout, stderr []byte) []byte {
	return func(result, stdout, stderr []byte) []byte {
		return ref.Frames([]byte(f(string(result))), stdout, stderr)
	}
}

func clientCases() []Case {
	echo := ClientJob{Module: "echo", Args: []string{"hello", "wörld", ""}, Stdin: []byte("stdin bytes\n")}
	honest := Script{}
	one := func(name string, reqs []string, s Script) clientCase {
		return clientCase{name: name, reqs: reqs, nodes: []Script{s}, honest: -1, job: echo, want: wantRefuse}
	}
	good := func(name string, reqs []string, s Script, job ClientJob) clientCase {
		return clientCase{name: name, reqs: reqs, nodes: []Script{s}, honest: 0, job: job, want: wantAccept}
	}
	var ccs []clientCase

	// Honest nodes: the client must accept, and follow the exchange
	// while doing so (the played node checks offer and payload).
	ccs = append(ccs,
		good("honest/echo", []string{"RCPT-10", "JOB-1", "JOB-2", "JOB-5", "JOB-7", "JOB-15", "JOB-17"}, honest, echo),
		good("honest/no-args-no-stdin", []string{"RCPT-10", "JOB-5", "WIRE-5"}, honest, ClientJob{Module: "tiny"}),
		good("honest/exit-code-and-stderr", []string{"RCPT-10", "RCPT-9", "EXEC-5"}, honest, ClientJob{Module: "exit7"}),
		good("honest/trapped-outcome", []string{"RCPT-10", "RCPT-1", "EXEC-5"}, honest, ClientJob{Module: "trap"}),
		good("honest/truncated-output", []string{"RCPT-10", "JOB-10", "EXEC-4"}, honest, ClientJob{Module: "flood", TimeoutSeconds: 1}),
		good("honest/have-module", []string{"JOB-5", "JOB-16"}, Script{HaveModule: true}, echo),
		good("honest/progress", []string{"JOB-18", "RCPT-10"}, Script{ProgressMS: 200, RunFor: 1500 * time.Millisecond}, echo),
		good("honest/clamped-limits", []string{"EXEC-7", "JOB-11"}, Script{Accepted: func(a map[string]any) {
			a["limits"].(map[string]any)["memory_mb"] = 8
		}}, echo),
		good("honest/unknown-members", []string{"WIRE-16"}, Script{
			Accepted: func(a map[string]any) {
				a["x_future"] = map[string]any{"type": 1}
				a["limits"].(map[string]any)["x_more"] = true
			},
			Result: func(r map[string]any) { r["x_future"] = []any{1, "two"} },
		}, echo),
		good("honest/receipt-wire-form", []string{"RCPT-3", "WIRE-11"}, Script{Wire: frameWith(func(r string) string {
			// Whitespace and member order on the wire do not change what is
			// signed: the canonical form.
			return strings.ReplaceAll(strings.ReplaceAll(r, `,"`, ", \n \""), `":`, `" :`)
		})}, echo),
	)

	// A second node: the client may retry and must then take only the
	// honest result, with a new stream and a new nonce (JOB-1, JOB-15).
	ccs = append(ccs,
		clientCase{name: "retry/busy-then-honest", reqs: []string{"JOB-1", "JOB-4", "JOB-15"},
			nodes: []Script{{Reject: "queue_full"}, honest}, honest: 1, job: echo, want: wantAccept},
		clientCase{name: "retry/forged-then-honest", reqs: []string{"RCPT-6", "RCPT-10", "JOB-15"},
			nodes: []Script{{Signed: func(rc map[string]any) { flipHex(rc, "signature") }}, honest}, honest: 1, job: echo, want: wantRefuse},
		clientCase{name: "retry/stall-then-honest", reqs: []string{"JOB-14", "JOB-15"},
			nodes: []Script{{StallAt: "offer"}, honest}, honest: 1, job: echo, want: wantRefuse},
	)

	// Receipts that must be refused (SPEC §3.4, in the checks' order).
	ccs = append(ccs,
		one("receipt/forged-signature", []string{"RCPT-6", "RCPT-10"}, Script{Signed: func(rc map[string]any) { flipHex(rc, "signature") }}),
		one("receipt/altered-after-signing", []string{"RCPT-6", "RCPT-10"}, Script{
			Signed: func(rc map[string]any) { rc["exit_code"] = 3 },
			Result: func(r map[string]any) { r["exit_code"] = 3 },
		}),
		one("receipt/foreign-signer", []string{"RCPT-5", "ID-2", "RCPT-10"}, func() Script {
			k := otherKey()
			return Script{ReceiptKey: k, Receipt: func(rc map[string]any, _ *played) {
				pub := k.Public().(ed25519.PublicKey)
				rc["node_pubkey"], rc["node_peer_id"] = hex.EncodeToString(pub), ref.PeerID(pub)
			}}
		}()),
		one("receipt/signed-by-other-key", []string{"RCPT-6", "ID-2", "RCPT-10"}, Script{ReceiptKey: otherKey()}),
		one("receipt/pubkey-not-the-peer", []string{"RCPT-5", "RCPT-10"}, func() Script {
			k := otherKey()
			return Script{ReceiptKey: k, Receipt: func(rc map[string]any, _ *played) {
				rc["node_pubkey"] = hex.EncodeToString(k.Public().(ed25519.PublicKey))
			}}
		}()),
		one("receipt/replayed-nonce", []string{"RCPT-7", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { rc["nonce"] = NewNonce() }}),
		one("receipt/other-job-id", []string{"RCPT-7", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { rc["job_id"] = newJobID() }}),
		one("receipt/other-requester", []string{"RCPT-7", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) {
			rc["requester"] = ref.PeerID(otherKey().Public().(ed25519.PublicKey))
		}}),
		one("receipt/wrong-module-hash", []string{"RCPT-8", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { rc["module_hash"] = otherHash("module") }}),
		one("receipt/wrong-input-hash", []string{"RCPT-8", "RCPT-10"}, Script{Receipt: func(rc map[string]any, x *played) {
			rc["input_hash"] = ref.InputHash(append(x.Args, "extra"), x.Stdin)
		}}),
		one("receipt/wrong-stdout-hash", []string{"RCPT-9", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { rc["stdout_hash"] = otherHash("stdout") }}),
		one("receipt/wrong-output", []string{"RCPT-9", "RCPT-10"}, Script{Output: func(o, e []byte) ([]byte, []byte) {
			return append(bytes.Clone(o[:len(o)-1]), 'X'), e
		}}),
		clientCase{name: "receipt/wrong-stderr", reqs: []string{"RCPT-9", "RCPT-10"}, honest: -1, want: wantRefuse, job: ClientJob{Module: "exit7"},
			nodes: []Script{{Output: func(o, e []byte) ([]byte, []byte) { return o, []byte("hi!") }}}},
		one("receipt/unknown-member", []string{"RCPT-2", "RCPT-4", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { rc["note"] = "signed, but not a receipt member" }}),
		one("receipt/missing-member", []string{"RCPT-4", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { delete(rc, "deterministic") }}),
		one("receipt/timestamp-not-finished-at", []string{"RCPT-4", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) {
			rc["timestamp"] = rc["timestamp"].(int64) - 3600
		}}),
		one("receipt/outcome-mislabelled", []string{"RCPT-4", "EXEC-5", "RCPT-10"}, Script{Receipt: func(rc map[string]any, _ *played) { rc["exit_code"] = -1 }}),
		one("receipt/legacy-v0.1", []string{"LEG-2", "RCPT-10"}, Script{Legacy: true}),
		one("receipt/duplicate-member", []string{"WIRE-13", "API-29", "RCPT-10"}, Script{Wire: frameWith(func(r string) string {
			// A parser that keeps the last of two names would see the
			// honest receipt; the spec says the message is invalid.
			return replaceOnce(r, `"receipt":{`, `"receipt":{"exit_code":99,`)
		})}),
		one("receipt/none", []string{"RCPT-10", "WIRE-21"}, Script{Result: func(r map[string]any) { delete(r, "receipt") }}),
		one("result/hash-mismatch-outcome", []string{"JOB-8"}, Script{
			Receipt: func(rc map[string]any, _ *played) { rc["outcome"], rc["exit_code"] = "hash_mismatch", -1 },
			Result:  func(r map[string]any) { r["outcome"], r["exit_code"] = "hash_mismatch", -1 },
		}),
		one("result/stdout-over-accepted-cap", []string{"JOB-10"}, Script{Accepted: func(a map[string]any) {
			a["limits"].(map[string]any)["stdout_cap"] = 4
		}}),
	)

	// Frames that break the wire rules.
	ccs = append(ccs,
		one("frame/oversized-result", []string{"WIRE-8", "WIRE-6"}, Script{Result: func(r map[string]any) { r["x_pad"] = strings.Repeat("p", 70000) }}),
		one("frame/stdout-size-lie", []string{"WIRE-10"}, Script{Wire: func(res, o, e []byte) []byte {
			return ref.Frames(res, append(bytes.Clone(o), '!'), e)
		}}),
		one("frame/non-minimal-length", []string{"WIRE-3"}, Script{Wire: func(res, o, e []byte) []byte {
			// The result's length with a needless continuation byte.
			b := ref.AppendVarint(nil, uint64(len(res)))
			b[len(b)-1] |= 0x80
			b = append(b, 0x00)
			return append(append(b, res...), ref.Frames(o, e)...)
		}}),
		one("frame/result-before-accepted", []string{"JOB-13"}, Script{Accepted: func(a map[string]any) {
			a["type"] = "result"
		}}),
	)

	// Stalls and early closes: the client must bound every wait (JOB-14)
	// and never act on a partial frame (WIRE-7).
	for _, step := range []string{"offer", "payload", "result", "stdout", "mid-stdout", "stderr"} {
		ccs = append(ccs, one("stall/"+step, []string{"JOB-14", "RCPT-10"}, Script{StallAt: step}))
	}
	for _, step := range []string{"payload", "mid-stdout", "stderr"} {
		ccs = append(ccs, one("close/"+step, []string{"WIRE-7", "JOB-9", "RCPT-10"}, Script{CloseAt: step}))
	}

	// Capability records the client must not use (CAP-5): the played node
	// would run the job honestly, so only a client that skipped the
	// record's checks gets as far as an offer.
	rec := func(name string, reqs []string, s Script) clientCase {
		cc := one(name, append(reqs, "CAP-5"), s)
		cc.unused = []int{0}
		return cc
	}
	ccs = append(ccs,
		rec("caps/bad-signature", []string{"CAP-1", "CAPS-4"}, Script{RecordSigned: func(r map[string]any) { flipHex(r, "signature") }}),
		rec("caps/signed-by-other-key", []string{"CAP-1", "ID-2"}, Script{RecordKey: otherKey()}),
		rec("caps/foreign-peer-id", []string{"CAPS-4", "CAP-2"}, func() Script {
			k := otherKey()
			return Script{RecordKey: k, Record: func(r map[string]any) { r["peer_id"] = ref.PeerID(k.Public().(ed25519.PublicKey)) }}
		}()),
		rec("caps/expired", []string{"CAP-2"}, Script{Record: func(r map[string]any) {
			now := time.Now()
			r["issued_at"], r["expires_at"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}}),
		rec("caps/lifetime-over-24h", []string{"CAP-2"}, Script{Record: func(r map[string]any) {
			r["expires_at"] = time.Now().Add(48 * time.Hour).Unix()
		}}),
		rec("caps/unknown-member", []string{"CAP-2", "CAPS-4"}, Script{Record: func(r map[string]any) { r["x_extra"] = 1 }}),
		rec("caps/no-wasi-abi", []string{"CAPS-4"}, Script{Record: func(r map[string]any) { r["abis"] = []string{"wasi_snapshot_preview2"} }}),
		clientCase{name: "caps/wrong-arch-required", reqs: []string{"CAP-6"}, honest: -1, want: wantRefuse, unused: []int{0},
			job:   ClientJob{Module: "echo", Arch: "riscv64", RequireArch: true},
			nodes: []Script{{}}},
		clientCase{name: "caps/liar-and-honest", reqs: []string{"CAP-5", "CAP-1"}, honest: 1, want: wantAccept, unused: []int{0}, job: echo,
			nodes: []Script{{RecordSigned: func(r map[string]any) { flipHex(r, "signature") }}, honest}},
	)

	out := make([]Case, 0, len(ccs))
	for _, cc := range ccs {
		out = append(out, cc.toCase())
	}
	return out
}

// replaceOnce replaces the first old in s, and panics (failing the case)
// when there is none: a lie that did not happen would pass silently.
func replaceOnce(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic(fmt.Sprintf("case bug: %q not in %s", old, shorten(s, 200)))
	}
	return strings.Replace(s, old, new, 1)
}

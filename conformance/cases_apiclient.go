package conformance

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// API-client cases: the suite plays a node's local HTTP API against a
// client of it (docs/spec-api.md §6). There is one worker behind the API
// and no second chance: the client must accept the honest answers and
// refuse (or report an error for) every other.

type apiClientCase struct {
	name   string
	reqs   []string
	script APIScript
	job    ClientJob
	want   clientWant
	// needsNode: the case lies in GET /v1/node; a client that never reads
	// it is not concerned.
	needsNode bool
}

func (ac apiClientCase) toCase() Case {
	return Case{Name: "api-client/" + ac.name, Reqs: ac.reqs, Side: SideAPIClient, Run: func(t *T) { ac.run(t) }}
}

func (ac apiClientCase) run(t *T) {
	job := ac.job
	if job.Module == "" {
		job.Module = "echo"
		job.Args = []string{"hello", "wörld", ""}
		job.Stdin = []byte("stdin bytes\n")
	}
	a := t.newAPINet(t.Module(job.Module), ac.script)
	t.Note("played API %s: requester %s, worker %s", a.addr, a.apiID(), a.workerID())
	v := t.runAPIClient(a, job)
	if ac.needsNode && a.nodeGets.Load() == 0 {
		t.NA("the client does not read GET /v1/node, so it never sees the key it would check")
	}
	accepted := v.Verdict == VerdictAccepted
	switch {
	case ac.want == wantAccept && !accepted:
		t.Errorf("API-16: the client did not accept an honest, verifiable answer: %s %s", v.Verdict, shorten(v.Detail, 300))
	case ac.want == wantRefuse && accepted:
		t.Errorf("API-16: the client accepted a bad answer (node %s, outcome %s, stdout %q)", v.Node, v.Outcome, shorten(string(v.Stdout), 80))
	case accepted:
		out := playRun(t.Module(job.Module), job.Args, job.Stdin)
		stdout, _ := clip(out.stdout, 4096)
		if !bytes.Equal(v.Stdout, stdout) {
			t.Errorf("API-13: the client reported stdout %q, the answer carried %q", shorten(string(v.Stdout), 100), shorten(string(stdout), 100))
		}
		if v.Node != a.workerID() {
			t.Errorf("the client reported node %q, the answer named %s", v.Node, a.workerID())
		}
		if v.Outcome != out.outcome || out.outcome == "exited" && (v.ExitCode == nil || *v.ExitCode != out.exitCode) {
			t.Errorf("the client reported outcome %q exit %v, the receipt says %s %d", v.Outcome, v.ExitCode, out.outcome, out.exitCode)
		}
	}
}

func apiClientCases() []Case {
	exit7 := ClientJob{Module: "exit7"}
	good := func(name string, reqs []string, s APIScript, job ClientJob) apiClientCase {
		return apiClientCase{name: name, reqs: reqs, script: s, job: job, want: wantAccept}
	}
	bad := func(name string, reqs []string, s APIScript) apiClientCase {
		return apiClientCase{name: name, reqs: reqs, script: s, want: wantRefuse}
	}
	receipt := func(f func(rc map[string]any)) APIScript { return APIScript{Receipt: f} }
	acs := []apiClientCase{
		good("honest/echo", []string{"API-16", "API-9", "API-18", "API-19", "API-20", "API-21", "API-22", "API-23"}, APIScript{}, ClientJob{}),
		good("honest/exit-code-null-stdout", []string{"API-13", "API-25", "API-16"}, APIScript{}, exit7),
		good("honest/trapped", []string{"API-16", "API-25"}, APIScript{}, ClientJob{Module: "trap"}),
		good("honest/whitespace", []string{"API-12", "API-16"}, APIScript{Text: func(s string) string {
			var b bytes.Buffer
			_ = json.Indent(&b, []byte(s), "", "\t")
			return b.String()
		}}, ClientJob{}),

		bad("receipt/forged-signature", []string{"API-20", "API-16"}, APIScript{Signed: func(rc map[string]any) { flipHex(rc, "signature") }}),
		bad("receipt/signed-by-other-key", []string{"API-20", "API-16"}, APIScript{ReceiptKey: otherKey()}),
		bad("receipt/foreign-signer", []string{"API-18", "API-19", "API-16"}, func() APIScript {
			k := otherKey()
			return APIScript{ReceiptKey: k, Receipt: func(rc map[string]any) {
				rc["node_pubkey"], rc["node_peer_id"] = hexKey(k), ref.PeerID(k.Public().(ed25519.PublicKey))
			}}
		}()),
		bad("response/node-not-ed25519", []string{"API-26", "API-18"}, APIScript{Response: func(r map[string]any) {
			r["node"] = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
		}}),
		bad("receipt/wrong-module-hash", []string{"API-21", "API-16"}, receipt(func(rc map[string]any) { rc["module_hash"] = otherHash("module") })),
		bad("receipt/wrong-input-hash", []string{"API-22", "API-16"}, receipt(func(rc map[string]any) { rc["input_hash"] = ref.InputHash([]string{"other"}, nil) })),
		bad("receipt/wrong-stdout-hash", []string{"API-23", "API-16"}, receipt(func(rc map[string]any) { rc["stdout_hash"] = otherHash("stdout") })),
		bad("output/altered", []string{"API-23", "API-16"}, APIScript{Output: func(o, e []byte) ([]byte, []byte) {
			return append(bytes.Clone(o[:len(o)-1]), 'X'), e
		}}),
		bad("output/text-differs", []string{"API-13", "API-25"}, APIScript{Response: func(r map[string]any) { r["stdout"] = "not the bytes\n" }}),
		{name: "response/exit-code-differs", reqs: []string{"API-25", "API-16"}, job: exit7, want: wantRefuse,
			script: APIScript{Response: func(r map[string]any) { r["exit_code"] = 0 }}},
		bad("response/truncation-differs", []string{"API-25"}, APIScript{Response: func(r map[string]any) { r["stdout_truncated"] = true }}),
		bad("receipt/unknown-member", []string{"API-17", "RCPT-2"}, receipt(func(rc map[string]any) { rc["note"] = "signed" })),
		bad("receipt/timestamp", []string{"API-17"}, receipt(func(rc map[string]any) { rc["timestamp"] = rc["timestamp"].(int64) + 7200 })),
		bad("receipt/duplicate-member", []string{"API-17", "API-29"}, APIScript{Text: func(s string) string {
			return replaceOnce(s, `"receipt":{`, `"receipt":{"exit_code":5,`)
		}}),
		bad("receipt/fraction", []string{"API-17", "API-29"}, APIScript{Text: func(s string) string {
			return replaceOnce(s, `"wall_time_ms":3}`, `"wall_time_ms":3.0}`)
		}}),
		bad("receipt/legacy-v0.1", []string{"LEG-2", "API-17"}, APIScript{Legacy: true}),
		bad("receipt/requester-not-the-api-node", []string{"API-24"}, receipt(func(rc map[string]any) {
			rc["requester"] = ref.PeerID(otherKey().Public().(ed25519.PublicKey))
		})),
		{name: "node/key-not-the-peer", reqs: []string{"API-7"}, want: wantRefuse, needsNode: true,
			script: APIScript{Node: func(m map[string]any) { m["public_key"] = hexKey(otherKey()) }}},
		bad("status/502", []string{"API-16", "API-5"}, APIScript{Status: 502, Body: `{"error":"no node could run the job: played","attempts":[]}`}),
		bad("status/404-plain-text", []string{"API-5"}, APIScript{Status: 404, Body: "404 page not found\n", ContentType: "text/plain; charset=utf-8"}),
		bad("status/200-not-json", []string{"API-16", "API-5"}, APIScript{Status: 200, Body: "<html>ok</html>"}),
		{name: "stall", reqs: []string{"API-6"}, want: wantRefuse, script: APIScript{Stall: true}, job: ClientJob{Module: "echo", Deadline: 8 * time.Second}},
	}
	out := make([]Case, 0, len(acs))
	for _, ac := range acs {
		out = append(out, ac.toCase())
	}
	return out
}

func hexKey(k ed25519.PrivateKey) string { return hex.EncodeToString(k.Public().(ed25519.PublicKey)) }

package conformance

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// The API-client side: the suite plays a node's local HTTP API
// (docs/spec-api.md) that answers POST /v1/jobs with results and receipts
// built here from the spec — honestly, or with one lie each — against a
// client of that API.

// APIScript is how the played API behaves; the zero APIScript is honest.
type APIScript struct {
	// Receipt changes the receipt before it is signed; Signed after;
	// ReceiptKey signs it with another key than the worker's.
	Receipt    func(rc map[string]any)
	Signed     func(rc map[string]any)
	ReceiptKey ed25519.PrivateKey
	Legacy     bool // a v0.1 receipt signed by the worker (LEG-2)
	// Output changes the bytes returned after the receipt was made.
	Output func(stdout, stderr []byte) ([]byte, []byte)
	// Response changes the response object; Text its JSON text.
	Response func(resp map[string]any)
	Text     func(body string) string
	// Node changes GET /v1/node's object.
	Node func(m map[string]any)
	// Status answers POST /v1/jobs with this status and Body as it is.
	Status      int
	Body        string
	ContentType string
	Stall       bool // never answer POST /v1/jobs
}

// apiNet is a played API: its own identity (the requester of every job)
// and a worker's (the node that "ran" it).
type apiNet struct {
	t         *T
	addr      string
	apiKey    ed25519.PrivateKey
	workerKey ed25519.PrivateKey
	module    []byte
	script    APIScript
	nodeGets  atomic.Int32
}

func (a *apiNet) apiID() string    { return ref.PeerID(a.apiKey.Public().(ed25519.PublicKey)) }
func (a *apiNet) workerID() string { return ref.PeerID(a.workerKey.Public().(ed25519.PublicKey)) }

// newAPINet serves the played API on loopback until the case ends.
func (t *T) newAPINet(module []byte, s APIScript) *apiNet {
	a := &apiNet{t: t, apiKey: otherKey(), workerKey: otherKey(), module: module, script: s}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	a.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(t.ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, `{"status":"ok"}`) })
	mux.HandleFunc("GET /v1/node", func(w http.ResponseWriter, _ *http.Request) {
		a.nodeGets.Add(1)
		m := map[string]any{"peer_id": a.apiID(), "public_key": hex.EncodeToString(a.apiKey.Public().(ed25519.PublicKey)),
			"addrs": []string{}, "version": "conformance", "peers": 1, "routing_table_size": 1, "uptime_seconds": 1.5, "record": nil}
		if s.Node != nil {
			s.Node(m)
		}
		writeJSON(w, 200, Marshal(m))
	})
	mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) { a.job(ctx, w, r) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { cancel(); _ = srv.Close() })
	return a
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

var apiRequestMembers = []string{"module", "args", "stdin", "memory_mb", "timeout_seconds", "cpu_cores", "arch",
	"require_arch", "attempts", "replicas", "deterministic", "seed"}

func (a *apiNet) job(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	t, s := a.t, a.script
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return
	}
	t.line("got", "POST /v1/jobs "+shorten(string(body), 300))
	// API-9: what the client sends.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("API-9: the client sent Content-Type %q", r.Header.Get("Content-Type"))
	}
	req, err := ref.Object(body)
	if err != nil {
		t.Errorf("API-9: the client's body is not one JSON object: %v", err)
		writeJSON(w, 400, `{"error":"body: not one JSON object"}`)
		return
	}
	for k := range req {
		if !slices.Contains(apiRequestMembers, k) {
			t.Errorf("API-9: the client sent member %q", k)
		}
	}
	b64 := func(k string) []byte {
		v, ok := req[k]
		if !ok {
			return nil
		}
		str, _ := v.(string)
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			t.Errorf("API-9: %s is not standard base64: %v", k, err)
		}
		return b
	}
	module, stdin := b64("module"), b64("stdin")
	var args []string
	list, _ := req["args"].([]any)
	for _, v := range list {
		str, _ := v.(string)
		args = append(args, str)
	}
	if string(module) != string(a.module) {
		t.Errorf("API-9: the client sent %d module bytes, not the job's module", len(module))
	}
	if s.Stall {
		t.Note("the API stalls")
		<-ctx.Done()
		return
	}
	if s.Status != 0 {
		ct := s.ContentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(s.Status)
		_, _ = io.WriteString(w, s.Body)
		return
	}
	out := playRun(module, args, stdin)
	stdout, stdoutTrunc := clip(out.stdout, 4096)
	stderr, stderrTrunc := clip(out.stderr, 1024)
	finished := time.Now().UTC()
	started := finished.Add(-3 * time.Millisecond)
	wpub := a.workerKey.Public().(ed25519.PublicKey)
	rc := map[string]any{
		"version": "1", "module_hash": ref.Hash(module), "exit_code": out.exitCode, "wall_time_ms": 3,
		"timestamp": finished.Unix(), "node_pubkey": hex.EncodeToString(wpub),
		"job_id": newJobID(), "nonce": NewNonce(), "requester": a.apiID(), "node_peer_id": ref.PeerID(wpub),
		"input_hash": ref.InputHash(args, stdin), "stdout_hash": ref.Hash(stdout), "stderr_hash": ref.Hash(stderr),
		"stdout_truncated": stdoutTrunc, "stderr_truncated": stderrTrunc, "outcome": out.outcome,
		"deterministic": req["deterministic"] == true,
		"limits":        map[string]any{"memory_mb": 16, "timeout_ms": 2000, "stdout_cap": 4096, "stderr_cap": 1024},
		"started_at":    started.Format("2006-01-02T15:04:05.000Z"), "finished_at": finished.Format("2006-01-02T15:04:05.000Z"),
	}
	if s.Receipt != nil {
		s.Receipt(rc)
	}
	key := a.workerKey
	if s.ReceiptKey != nil {
		key = s.ReceiptKey
	}
	if err := signObject(rc, "phase-receipt:v1:", key); err != nil {
		t.Errorf("signing: %v", err)
		return
	}
	if s.Legacy {
		legacy(a.workerKey)(rc)
	}
	if s.Signed != nil {
		s.Signed(rc)
	}
	if s.Output != nil {
		stdout, stderr = s.Output(stdout, stderr)
	}
	resp := map[string]any{"outcome": out.outcome, "exit_code": out.exitCode,
		"stdout_base64": base64OrNull(stdout), "stderr_base64": base64OrNull(stderr),
		"stdout_truncated": stdoutTrunc, "stderr_truncated": stderrTrunc, "node": a.workerID(), "wall_time_ms": 3.25,
		"attempts": []any{map[string]any{"node": a.workerID(), "outcome": "ok", "duration_ms": 4.5}}, "receipt": rc}
	for k, b := range map[string][]byte{"stdout": stdout, "stderr": stderr} {
		if utf8.Valid(b) {
			resp[k] = string(b)
		}
	}
	if s.Response != nil {
		s.Response(resp)
	}
	text := Marshal(resp)
	if s.Text != nil {
		text = s.Text(text)
	}
	writeJSON(w, 200, text)
}

func base64OrNull(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return base64.StdEncoding.EncodeToString(b)
}

// runAPIClient runs the API client under test against a with job.
func (t *T) runAPIClient(a *apiNet, job ClientJob) ClientVerdict {
	env, deadline := t.clientEnv(job)
	env = append(env, "PHASE_API="+a.addr)
	return t.execClient(env, deadline)
}

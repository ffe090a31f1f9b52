package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/conformance/spec"
)

// breakage is one deliberate defect of a proxy in front of a correct API:
// the cases named by run must fail, naming req.
type breakage struct {
	name string
	run  string // cases to run (regular expression)
	req  string // the requirement that must fail
	// request rewrites the request body of path (nil: as sent).
	request func(path string, body []byte) []byte
	// response rewrites an answer (nil: as answered).
	response func(path string, status int, h http.Header, body []byte) (int, []byte)
}

// brokenAPI serves a proxy in front of upstream with b's defect, on
// loopback, until the test ends.
func brokenAPI(t *testing.T, upstream string, b breakage) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body streams through unless the defect rewrites it (the
		// 128 MiB case is not held in memory).
		var body io.Reader = r.Body
		size := r.ContentLength
		if b.request != nil {
			all, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			all = b.request(r.URL.Path, all)
			body, size = bytes.NewReader(all), int64(len(all))
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+upstream+r.URL.RequestURI(), body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.ContentLength = size
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		status, h := resp.StatusCode, resp.Header.Clone()
		if b.response != nil {
			status, out = b.response(r.URL.Path, status, h, out)
		}
		h.Del("Content-Length")
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// editJSON decodes body, lets f change it and encodes it again (numbers
// kept as written, <>& not escaped).
func editJSON(body []byte, f func(v any) any) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return body
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(f(v))
	return buf.Bytes()
}

// onObject edits the object answered on path with the given status.
func onObject(path string, status int, f func(m map[string]any)) func(string, int, http.Header, []byte) (int, []byte) {
	return func(p string, s int, _ http.Header, body []byte) (int, []byte) {
		if p != path || s != status {
			return s, body
		}
		return s, editJSON(body, func(v any) any {
			if m, ok := v.(map[string]any); ok {
				f(m)
			}
			return v
		})
	}
}

// onRequest edits the object sent on path.
func onRequest(path string, f func(m map[string]any)) func(string, []byte) []byte {
	return func(p string, body []byte) []byte {
		if p != path {
			return body
		}
		return editJSON(body, func(v any) any {
			if m, ok := v.(map[string]any); ok {
				f(m)
			}
			return v
		})
	}
}

func withStatus(path string, from, to int) func(string, int, http.Header, []byte) (int, []byte) {
	return func(p string, s int, _ http.Header, body []byte) (int, []byte) {
		if p == path && s == from {
			return to, body
		}
		return s, body
	}
}

func breakages() []breakage {
	other := "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB" // the spec's test key: not a node here
	return []breakage{
		{name: "healthz as text", run: "^api/healthz/status-ok$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/healthz" {
					h.Set("Content-Type", "text/plain; charset=utf-8")
				}
				return s, b
			}},
		{name: "HTML escaping", run: "^api/jobs/run$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				return s, bytes.ReplaceAll(b, []byte("<&>"), []byte(`\u003c\u0026\u003e`))
			}},
		{name: "two JSON values", run: "^api/healthz/status-ok$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) { return s, append(b, []byte("{}\n")...) }},
		{name: "node's public key of another peer", run: "^api/node$", req: "API-7",
			response: onObject("/v1/node", 200, func(m map[string]any) {
				m["public_key"] = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
			})},
		{name: "node's addresses without /p2p", run: "^api/node$", req: "API-3",
			response: onObject("/v1/node", 200, func(m map[string]any) { m["addrs"] = []string{"/ip4/127.0.0.1/tcp/1"} })},
		{name: "peer direction unknown", run: "^api/peers$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p != "/v1/peers" {
					return s, b
				}
				b = bytes.ReplaceAll(b, []byte(`"outbound"`), []byte(`"both"`))
				return s, bytes.ReplaceAll(b, []byte(`"inbound"`), []byte(`"both"`))
			}},
		{name: "metrics as JSON", run: "^api/metrics$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/metrics" {
					h.Set("Content-Type", "application/json")
				}
				return s, b
			}},
		{name: "404 as a JSON 200", run: "^api/not-found$", req: "API-5",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if s == http.StatusNotFound {
					h.Set("Content-Type", "application/json")
					return http.StatusOK, []byte("{}\n")
				}
				return s, b
			}},
		{name: "405 without Allow", run: "^api/method-not-allowed$", req: "API-5",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				h.Del("Allow")
				return s, b
			}},
		{name: "slow answers", run: "^api/answers-in-time$", req: "API-6",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/healthz" {
					time.Sleep(5500 * time.Millisecond)
				}
				return s, b
			}},
		{name: "find takes unknown parameters", run: "^api/find/bad-query/unknown-parameter$", req: "API-8",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/v1/find" && s == http.StatusBadRequest {
					return http.StatusOK, []byte("[]\n")
				}
				return s, b
			}},
		{name: "find refuses with 500", run: "^api/find/bad-query/repeated$", req: "API-8", response: withStatus("/v1/find", 400, 500)},
		{name: "find ignores limit", run: "^api/find$", req: "API-8",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/v1/find" && s == 200 {
					return s, editJSON(b, func(v any) any {
						if a, ok := v.([]any); ok && len(a) > 0 {
							return append(a, a[0])
						}
						return v
					})
				}
				return s, b
			}},
		{name: "find lists a forged record", run: "^api/find$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/v1/find" && s == 200 {
					return s, bytes.Replace(b, []byte(`"load":`), []byte(`"load":1`), 1)
				}
				return s, b
			}},
		{name: "error member renamed", run: "^api/jobs/bad-request/unknown-member$", req: "API-4",
			response: onObject("/v1/jobs", 400, func(m map[string]any) { m["message"] = m["error"]; delete(m, "error") })},
		{name: "error body as text", run: "^api/find/bad-query/limit-over$", req: "API-3",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if s == 400 {
					h.Set("Content-Type", "text/plain")
				}
				return s, b
			}},
		{name: "bad job request as 422", run: "^api/jobs/bad-request/memory-over$", req: "API-10", response: withStatus("/v1/jobs", 400, 422)},
		{name: "bad job request error names nothing", run: "^api/jobs/bad-request/unknown-member$", req: "API-10",
			response: onObject("/v1/jobs", 400, func(m map[string]any) { m["error"] = "bad request" })},
		{name: "bad job request runs", run: "^api/jobs/bad-request/seed-without-deterministic$", req: "API-10",
			request: onRequest("/v1/jobs", func(m map[string]any) { delete(m, "seed") })},
		{name: "oversized body accepted", run: "^api/jobs/bad-request/body-over-128-MiB$", req: "API-10",
			response: withStatus("/v1/jobs", 400, 413)},
		{name: "defaults not applied", run: "^api/jobs/defaults-and-clamping$", req: "API-11",
			request: onRequest("/v1/jobs", func(m map[string]any) { m["memory_mb"] = 32 })},
		{name: "limits not passed as given", run: "^api/jobs/every-member$", req: "API-11",
			request: onRequest("/v1/jobs", func(m map[string]any) { m["timeout_seconds"] = 3 })},
		{name: "another module runs", run: "^api/jobs/run$", req: "API-21",
			request: onRequest("/v1/jobs", func(m map[string]any) {
				m["module"] = base64.StdEncoding.EncodeToString(append(mustModule("echo"), 0, 2, 1, 'x'))
			})},
		{name: "other arguments", run: "^api/jobs/run$", req: "API-22",
			request: onRequest("/v1/jobs", func(m map[string]any) { m["args"] = []string{"<&>"} })},
		{name: "stdout bytes changed", run: "^api/jobs/run$", req: "API-23",
			response: onObject("/v1/jobs", 200, func(m map[string]any) {
				m["stdout_base64"] = base64.StdEncoding.EncodeToString([]byte("job\nforged\n"))
			})},
		{name: "stdout text differs", run: "^api/jobs/run$", req: "API-13",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["stdout"] = "something else" })},
		{name: "empty output as a number", run: "^api/jobs/empty-output$", req: "API-13",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["stdout_base64"] = 0 })},
		{name: "outcome differs from the receipt", run: "^api/jobs/outcomes$", req: "API-25",
			response: onObject("/v1/jobs", 200, func(m map[string]any) {
				if m["outcome"] == "trapped" {
					m["outcome"] = "timeout"
				}
			})},
		{name: "exit code differs from the receipt", run: "^api/jobs/outcomes$", req: "API-25",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["exit_code"] = json.Number("0") })},
		{name: "node names another peer", run: "^api/jobs/run$", req: "API-19",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["node"] = other })},
		{name: "node as a sha2-256 peer ID", run: "^api/jobs/run$", req: "API-26",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["node"] = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N" })},
		{name: "receipt changed", run: "^api/jobs/run$", req: "API-20",
			response: onObject("/v1/jobs", 200, func(m map[string]any) {
				m["receipt"].(map[string]any)["wall_time_ms"] = json.Number("123456")
			})},
		{name: "receipt with an extra member", run: "^api/jobs/run$", req: "API-17",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["receipt"].(map[string]any)["gpu"] = true })},
		{name: "attempts without the node that ran it", run: "^api/jobs/run$", req: "API-15",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { m["attempts"] = []any{} })},
		{name: "no-match attempts null", run: "^api/jobs/no-node-matches$", req: "API-15",
			response: onObject("/v1/jobs", 502, func(m map[string]any) { m["attempts"] = nil })},
		{name: "failed job as 500", run: "^api/jobs/no-node-matches$", req: "API-15", response: withStatus("/v1/jobs", 502, 500)},
		{name: "refusal left out of attempts", run: "^api/jobs/every-node-refuses$", req: "API-15",
			response: onObject("/v1/jobs", 502, func(m map[string]any) { m["attempts"] = []any{} })},
		{name: "replicas left out", run: "^api/jobs/replicas$", req: "API-14",
			response: onObject("/v1/jobs", 200, func(m map[string]any) { delete(m, "replicas") })},
		{name: "unverified result returned", run: "^api/jobs/forged-receipt-is-no-result$", req: "RCPT-10",
			response: func(p string, s int, h http.Header, b []byte) (int, []byte) {
				if p == "/v1/jobs" && s == http.StatusBadGateway {
					return http.StatusOK, b
				}
				return s, b
			}},
	}
}

// mustModule reads an embedded test module.
func mustModule(name string) []byte {
	b, err := spec.File("examples/wat/" + name + ".wasm")
	if err != nil {
		panic(err)
	}
	return b
}

// The API cases bite: each defect of a proxy in front of Plasm's correct
// API makes the cases it concerns fail, naming the requirement it breaks;
// the same cases through a proxy without a defect pass. It takes about three
// minutes, most of it the API's network cases waiting out their nodes, so
// make test (-short) leaves it to make conformance.
func TestAPICasesBite(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: run whole by make conformance")
	}
	s, err := New()
	require.NoError(t, err)
	ctx := context.Background()
	env, err := InProcess(ctx, InProcessOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	defer env.Close()

	bs := breakages()
	var all []string
	for _, b := range bs {
		all = append(all, b.run)
	}
	run := func(t *testing.T, b breakage, pattern string) *Report {
		view, err := env.ThroughAPI(ctx, brokenAPI(t, env.API, b))
		require.NoError(t, err)
		return s.Run(ctx, view, SideAPI, Options{Run: regexp.MustCompile(pattern)})
	}
	t.Run("no defect", func(t *testing.T) {
		rep := run(t, breakage{}, strings.Join(all, "|"))
		require.NotEmpty(t, rep.Cases)
		for _, c := range rep.Cases {
			assert.Equal(t, Pass, c.Verdict, "%s through a faithful proxy: %s", c.Name, c.Message)
		}
	})
	for _, b := range bs {
		t.Run(b.name, func(t *testing.T) {
			rep := run(t, b, b.run)
			require.NotEmpty(t, rep.Cases, "no case matches %s", b.run)
			named := false
			for _, c := range rep.Cases {
				if c.Verdict == Fail && strings.Contains(c.Message, b.req) && slices.Contains(c.Reqs, b.req) {
					named = true
				}
			}
			assert.True(t, named, "no case that checks %s failed naming it; cases: %v", b.req, caseVerdicts(rep))
			graded := false
			for _, q := range rep.Requirements {
				if q.ID == b.req {
					graded = q.Verdict == Fail
				}
			}
			assert.True(t, graded, "the report does not grade %s as failed", b.req)
		})
	}
}

func caseVerdicts(r *Report) []string {
	var out []string
	for _, c := range r.Cases {
		out = append(out, string(c.Verdict)+" "+c.Name+": "+shorten(c.Message, 200))
	}
	return out
}

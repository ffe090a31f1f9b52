package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/scripted"
)

// accessJob is a well-formed job request: refused for who sent it, never
// for what it says.
const accessJob = `{"module":"AGFzbQEAAAA="}`

// accessReq is one request as a browser or an attacker would send it.
type accessReq struct {
	method, path string
	host         string // "" sends the API's own address
	hdr          map[string]string
	body         string
}

// accessResp is the answer, read whole.
type accessResp struct {
	status int
	header http.Header
	body   []byte
}

// errorText is the "error" member of a JSON error body, or "".
func (r accessResp) errorText() string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

// accessDo sends q to the API at addr and records both sides.
func accessDo(t *T, addr string, q accessReq) accessResp {
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	ctx, cancel := context.WithTimeout(t.Ctx(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, q.method, "http://"+addr+q.path, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if q.host != "" {
		req.Host = q.host
	}
	for k, v := range q.hdr {
		req.Header.Set(k, v)
	}
	t.line("sent", fmt.Sprintf("%s %s Host: %s %v", q.method, q.path, req.Host, q.hdr))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	t.line("got", fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b))))
	return accessResp{status: resp.StatusCode, header: resp.Header, body: b}
}

// accessRefused checks a refusal: the status, a JSON error naming what was
// refused, and no CORS header that would let a page read it.
func accessRefused(t *T, r accessResp, status int, names, what string) {
	t.Check(r.status == status, "%s: got %d, want %d", what, r.status, status)
	t.Check(strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), "%s: error Content-Type %q, want application/json", what, r.header.Get("Content-Type"))
	t.Check(strings.Contains(r.errorText(), names), "%s: error %q does not name %q", what, r.errorText(), names)
	t.Check(r.header.Get("Access-Control-Allow-Origin") == "", "%s: answered with Access-Control-Allow-Origin %q", what, r.header.Get("Access-Control-Allow-Origin"))
}

// apiHardeningCases: who may use the local API (spec-api §1.1) and what
// /healthz says.
func apiHardeningCases() []Case {
	return []Case{
		{
			Name:  "api/access/dns-rebinding-host",
			Reqs:  []string{"API-30", "API-4"},
			Side:  SideAPI,
			Needs: NeedAPI,
			Run: func(t *T) {
				addr := t.Env().API
				for _, host := range []string{"attacker.example", "attacker.example:" + portOf(addr), "localhost.attacker.example"} {
					r := accessDo(t, addr, accessReq{method: "GET", path: "/v1/node", host: host})
					accessRefused(t, r, http.StatusMisdirectedRequest, host, "GET /v1/node with Host "+host)
				}
				r := accessDo(t, addr, accessReq{method: "POST", path: "/v1/jobs", host: "attacker.example",
					hdr: map[string]string{"Content-Type": "application/json"}, body: accessJob})
				accessRefused(t, r, http.StatusMisdirectedRequest, "attacker.example", "POST /v1/jobs with Host attacker.example")
				for _, host := range []string{"", "localhost:" + portOf(addr)} {
					r := accessDo(t, addr, accessReq{method: "GET", path: "/healthz", host: host})
					t.Check(r.status == http.StatusOK, "GET /healthz with Host %q (the API's own or a loopback name): got %d, want 200", host, r.status)
				}
			},
		},
		{
			Name:  "api/access/cross-origin",
			Reqs:  []string{"API-31"},
			Side:  SideAPI,
			Needs: NeedAPI,
			Run: func(t *T) {
				addr := t.Env().API
				evil := "http://evil.example"
				// The attack: a simple (unpreflighted) cross-site POST.
				r := accessDo(t, addr, accessReq{method: "POST", path: "/v1/jobs",
					hdr: map[string]string{"Content-Type": "text/plain", "Origin": evil}, body: accessJob})
				accessRefused(t, r, http.StatusForbidden, evil, "text/plain POST /v1/jobs from "+evil)
				r = accessDo(t, addr, accessReq{method: "POST", path: "/v1/jobs",
					hdr: map[string]string{"Content-Type": "application/json", "Origin": evil}, body: accessJob})
				accessRefused(t, r, http.StatusForbidden, evil, "JSON POST /v1/jobs from "+evil)
				r = accessDo(t, addr, accessReq{method: "GET", path: "/v1/node", hdr: map[string]string{"Origin": "null"}})
				accessRefused(t, r, http.StatusForbidden, "null", "GET /v1/node from Origin null")
				r = accessDo(t, addr, accessReq{method: "GET", path: "/v1/node", hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}})
				accessRefused(t, r, http.StatusForbidden, "cross-site", "GET /v1/node with Sec-Fetch-Site cross-site")
				r = accessDo(t, addr, accessReq{method: "OPTIONS", path: "/v1/jobs",
					hdr: map[string]string{"Origin": evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}})
				t.Check(r.status >= 400, "preflight from %s: got %d, want a refusal", evil, r.status)
				for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
					t.Check(r.header.Get(h) == "", "preflight from %s answered %s: %q", evil, h, r.header.Get(h))
				}
			},
		},
		{
			Name:  "api/access/post-content-type",
			Reqs:  []string{"API-32"},
			Side:  SideAPI,
			Needs: NeedAPI,
			Run: func(t *T) {
				addr := t.Env().API
				for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
					r := accessDo(t, addr, accessReq{method: "POST", path: "/v1/jobs", hdr: map[string]string{"Content-Type": ct}, body: accessJob})
					if r.status == http.StatusUnauthorized {
						t.NA("the API requires a token the suite was not given (API-33 comes first)")
					}
					accessRefused(t, r, http.StatusUnsupportedMediaType, "Content-Type", fmt.Sprintf("POST /v1/jobs with Content-Type %q", ct))
				}
			},
		},
		{
			Name:  "api/access/token",
			Reqs:  []string{"API-33", "API-34"},
			Side:  SideAPI,
			Needs: NeedAPI | NeedPlasm,
			Run:   accessTokenCase,
		},
		{
			Name:  "api/access/healthz-status",
			Reqs:  []string{"API-36", "API-3"},
			Side:  SideAPI,
			Needs: NeedAPI,
			Run: func(t *T) {
				r := accessDo(t, t.Env().API, accessReq{method: "GET", path: "/healthz"})
				t.Check(r.status == http.StatusOK, "GET /healthz: got %d, want 200 (it needs no token)", r.status)
				var h struct {
					Status   string `json:"status"`
					Problems []struct {
						Part  string `json:"part"`
						Error string `json:"error"`
					} `json:"problems"`
				}
				if err := json.Unmarshal(r.body, &h); err != nil {
					t.Fatalf("GET /healthz: body is not a JSON object: %v", err)
				}
				switch h.Status {
				case "ok":
				case "degraded":
					t.Check(len(h.Problems) > 0, "status degraded with no problems listed")
					for _, p := range h.Problems {
						t.Check(p.Error != "", "problem %q says no error", p.Part)
					}
				default:
					t.Errorf("status %q, want ok or degraded", h.Status)
				}
			},
		},
	}
}

// accessTokenCase serves Plasm's API with a token from a token file, as
// plasmd start does, and checks who gets in; and that a token file others
// may read is refused.
func accessTokenCase(t *T) {
	dir, err := os.MkdirTemp(t.Env().Dir, "token-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, api.TokenFile)
	if _, err := api.CreateToken(path); err != nil {
		t.Fatalf("creating the token file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := api.LoadToken(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a token file others may read (0644) was accepted or the error does not name it: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	token, err := api.LoadToken(path)
	if err != nil {
		t.Fatalf("a 0600 token file was refused: %v", err)
	}
	if _, err := api.LoadToken(filepath.Join(dir, "missing.token")); err == nil {
		t.Errorf("a missing token file was accepted")
	}

	n, err := scripted.Start(t.Ctx(), scripted.Options{Config: scripted.LoopbackConfig(filepath.Join(dir, "node"))})
	if err != nil {
		t.Fatalf("starting a node: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	srv := api.New(n, slog.New(slog.DiscardHandler), nil)
	srv.SetAccess(api.Access{Addr: l.Addr().String(), Token: token})
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Ctx()))
	t.Cleanup(cancel)
	go func() { _ = api.Serve(ctx, l, srv) }()
	addr := l.Addr().String()

	for _, auth := range []string{"", "Bearer", "Bearer " + strings.Repeat("0", len(token)), "Basic " + token, token} {
		hdr := map[string]string{}
		if auth != "" {
			hdr["Authorization"] = auth
		}
		for _, p := range []string{"/v1/node", "/v1/peers", "/metrics"} {
			r := accessDo(t, addr, accessReq{method: "GET", path: p, hdr: hdr})
			accessRefused(t, r, http.StatusUnauthorized, "token", fmt.Sprintf("GET %s with Authorization %q", p, shorten(auth, 20)))
			t.Check(r.header.Get("WWW-Authenticate") == `Bearer realm="plasmd"`, "GET %s: WWW-Authenticate %q", p, r.header.Get("WWW-Authenticate"))
		}
	}
	r := accessDo(t, addr, accessReq{method: "GET", path: "/healthz"})
	t.Check(r.status == http.StatusOK, "GET /healthz without a token: got %d, want 200", r.status)
	for _, auth := range []string{"Bearer " + token, "bearer " + token} {
		r = accessDo(t, addr, accessReq{method: "GET", path: "/v1/node", hdr: map[string]string{"Authorization": auth}})
		t.Check(r.status == http.StatusOK, "GET /v1/node with the token (%s…): got %d, want 200", auth[:7], r.status)
	}
}

// portOf is the port of host:port, or "".
func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/scripted"
)

const okJob = `{"module":"AGFzbQEAAAA="}`

// guarded is the API's routes as New builds them, with a job submitter
// that records whether a job was run, behind Access a.
func guarded(a Access) (http.Handler, *fakeSubmitter) {
	node := peer.ID("\x00\x24\x08\x01\x12\x20" + strings.Repeat("k", 32))
	sub := &fakeSubmitter{res: &client.Result{Node: node, Outcome: "exited", ReceiptJSON: []byte(`{}`)}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/node", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"peer_id": "secret"})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.Handle("POST /v1/jobs", JobsHandler(sub, metrics.New(), slog.New(slog.DiscardHandler)))
	return newGuard(mux, a), sub
}

type req struct {
	method, path, host, body string
	hdr                      map[string]string
}

func do(t *testing.T, h http.Handler, q req) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, q.path, body)
	r.Host = q.host
	for k, v := range q.hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec, out
}

var jsonCT = map[string]string{"Content-Type": "application/json"}

// DNS rebinding: a page on attacker.example resolves its own name to
// 127.0.0.1 and reads the API; the browser sends Host: attacker.example.
func TestAPI30_DNSRebindingHostRefused(t *testing.T) {
	h, sub := guarded(Access{Addr: "127.0.0.1:4748"})
	for _, host := range []string{"attacker.example", "attacker.example:4748", "localhost.attacker.example", "127.0.0.1.nip.io:4748", ""} {
		rec, out := do(t, h, req{method: "GET", path: "/v1/node", host: host})
		assert.Equal(t, http.StatusMisdirectedRequest, rec.Code, host)
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		assert.Contains(t, out["error"], "host \""+host+"\"", "the error names the Host")
		assert.NotContains(t, rec.Body.String(), "secret")
	}
	rec, _ := do(t, h, req{method: "POST", path: "/v1/jobs", host: "attacker.example:4748", body: okJob, hdr: jsonCT})
	assert.Equal(t, http.StatusMisdirectedRequest, rec.Code)
	assert.Nil(t, sub.got.Module, "no job was run")

	for _, host := range []string{"127.0.0.1:4748", "localhost:4748", "LOCALHOST", "localhost.", "[::1]:4748", "127.0.0.2"} {
		rec, _ := do(t, h, req{method: "GET", path: "/v1/node", host: host})
		assert.Equal(t, http.StatusOK, rec.Code, host)
	}

	// A name the operator gave, and every IP literal when bound to all
	// interfaces (no DNS answer is involved in an IP literal).
	h, _ = guarded(Access{Addr: "0.0.0.0:4748", Hosts: []string{"plasm.internal"}})
	for _, host := range []string{"plasm.internal:4748", "192.0.2.7:4748", "[2001:db8::1]:4748"} {
		rec, _ := do(t, h, req{method: "GET", path: "/v1/node", host: host})
		assert.Equal(t, http.StatusOK, rec.Code, host)
	}
	rec, _ = do(t, h, req{method: "GET", path: "/v1/node", host: "attacker.example"})
	assert.Equal(t, http.StatusMisdirectedRequest, rec.Code)

	// Bound to one address: that address, not another.
	h, _ = guarded(Access{Addr: "192.0.2.7:4748"})
	rec, _ = do(t, h, req{method: "GET", path: "/v1/node", host: "192.0.2.7:4748"})
	assert.Equal(t, http.StatusOK, rec.Code)
	rec, _ = do(t, h, req{method: "GET", path: "/v1/node", host: "192.0.2.8:4748"})
	assert.Equal(t, http.StatusMisdirectedRequest, rec.Code)
}

// A page on evil.example POSTs a text/plain "simple" request (no
// preflight) to the loopback API.
func TestAPI31_CrossOriginRefused(t *testing.T) {
	h, sub := guarded(Access{})
	rec, out := do(t, h, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob,
		hdr: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}})
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Contains(t, out["error"], `origin "http://evil.example"`)
	assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"), "no CORS header lets the page read the answer")
	assert.Nil(t, sub.got.Module, "no job was run")

	// Even with the right Content-Type, and on reads.
	for _, q := range []req{
		{method: "POST", path: "/v1/jobs", body: okJob, hdr: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}},
		{method: "GET", path: "/v1/node", hdr: map[string]string{"Origin": "null"}},
		{method: "OPTIONS", path: "/v1/jobs", hdr: map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}},
		{method: "GET", path: "/v1/node", hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		q.host = "127.0.0.1:4748"
		rec, out := do(t, h, q)
		assert.Equal(t, http.StatusForbidden, rec.Code, q)
		assert.NotEmpty(t, out["error"])
		assert.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
		assert.NotContains(t, rec.Body.String(), "secret")
	}
	assert.Nil(t, sub.got.Module)

	// An allowed origin may call, and is told so; others still may not.
	h, sub = guarded(Access{Origins: []string{"http://dashboard.local:8080"}})
	rec, _ = do(t, h, req{method: "OPTIONS", path: "/v1/jobs", host: "127.0.0.1:4748",
		hdr: map[string]string{"Origin": "http://dashboard.local:8080", "Access-Control-Request-Method": "POST"}})
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, "http://dashboard.local:8080", rec.Header().Get("Access-Control-Allow-Origin"))
	rec, _ = do(t, h, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob,
		hdr: map[string]string{"Content-Type": "application/json", "Origin": "http://dashboard.local:8080"}})
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "http://dashboard.local:8080", rec.Header().Get("Access-Control-Allow-Origin"))
	assert.NotNil(t, sub.got.Module)
	rec, _ = do(t, h, req{method: "GET", path: "/v1/node", host: "127.0.0.1:4748", hdr: map[string]string{"Origin": "http://dashboard.local:9999"}})
	assert.Equal(t, http.StatusForbidden, rec.Code)

	// Tools that are not browsers send no Origin: allowed.
	rec, _ = do(t, h, req{method: "GET", path: "/v1/node", host: "127.0.0.1:4748", hdr: map[string]string{"Sec-Fetch-Site": "none"}})
	assert.Equal(t, http.StatusOK, rec.Code)
}

func TestAPI32_PostNeedsJSONContentType(t *testing.T) {
	h, sub := guarded(Access{})
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "text/plain; a=application/json"} {
		rec, out := do(t, h, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob, hdr: map[string]string{"Content-Type": ct}})
		assert.Equal(t, http.StatusUnsupportedMediaType, rec.Code, ct)
		assert.Contains(t, out["error"], "Content-Type", ct)
	}
	assert.Nil(t, sub.got.Module, "no job was run")
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		rec, _ := do(t, h, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob, hdr: map[string]string{"Content-Type": ct}})
		assert.Equal(t, http.StatusOK, rec.Code, ct)
	}
}

func TestAPI33_Token(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	h, sub := guarded(Access{Token: tok})
	for _, auth := range []string{"", "Bearer", "Bearer wrong-token-0123456789", "Basic " + tok, "Bearer " + tok + "x", tok} {
		for _, q := range []req{{method: "GET", path: "/v1/node"}, {method: "POST", path: "/v1/jobs", body: okJob, hdr: jsonCT}, {method: "GET", path: "/metrics"}} {
			q.host = "127.0.0.1:4748"
			if q.hdr == nil {
				q.hdr = map[string]string{}
			}
			q.hdr = map[string]string{"Authorization": auth, "Content-Type": q.hdr["Content-Type"]}
			rec, out := do(t, h, q)
			assert.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s %q", q.method, q.path, auth)
			assert.Contains(t, out["error"], "token")
			assert.Equal(t, `Bearer realm="plasmd"`, rec.Header().Get("WWW-Authenticate"))
			assert.NotContains(t, rec.Body.String(), "secret")
		}
	}
	assert.Nil(t, sub.got.Module, "no job was run")

	rec, _ := do(t, h, req{method: "GET", path: "/healthz", host: "127.0.0.1:4748"})
	assert.Equal(t, http.StatusOK, rec.Code, "/healthz needs no token")
	rec, _ = do(t, h, req{method: "GET", path: "/v1/node", host: "127.0.0.1:4748", hdr: map[string]string{"Authorization": "Bearer " + tok}})
	assert.Equal(t, http.StatusOK, rec.Code)
	rec, _ = do(t, h, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob, hdr: map[string]string{"Authorization": "bearer " + tok, "Content-Type": "application/json"}})
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.NotNil(t, sub.got.Module)
}

func TestAPI33_TokenFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, TokenFile)
	tok, err := CreateToken(p)
	require.NoError(t, err)
	assert.Len(t, tok, 64)
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again, err := CreateToken(p)
	require.NoError(t, err)
	assert.Equal(t, tok, again, "an existing token is kept")
	got, err := LoadToken(p)
	require.NoError(t, err)
	assert.Equal(t, tok, got)
	c, err := ReadClientToken(p)
	require.NoError(t, err)
	assert.Equal(t, tok, c)

	require.NoError(t, os.Chmod(p, 0o640))
	_, err = LoadToken(p)
	require.ErrorContains(t, err, "mode 0640")
	require.NoError(t, os.Chmod(p, 0o600))

	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("abc\n"), 0o600))
	_, err = LoadToken(short)
	require.ErrorContains(t, err, "at least 16")
	_, err = LoadToken(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "api token file")
	c, err = ReadClientToken(filepath.Join(dir, "missing"))
	require.NoError(t, err)
	assert.Empty(t, c, "no file: no token")

	path, explicit := TokenPath(dir, "")
	assert.Equal(t, p, path)
	assert.False(t, explicit)
	path, explicit = TokenPath(dir, "other.token")
	assert.Equal(t, filepath.Join(dir, "other.token"), path)
	assert.True(t, explicit)
}

// The Server that plasmd serves applies the guard (and the zero Access
// already refuses rebinding, cross-origin and text/plain requests).
func TestServerIsGuarded(t *testing.T) {
	ctx := context.Background()
	n, err := scripted.Start(ctx, scripted.Options{Config: scripted.LoopbackConfig(t.TempDir())})
	require.NoError(t, err)
	defer n.Close()
	sub := &fakeSubmitter{err: context.Canceled}
	s := New(n, slog.New(slog.DiscardHandler), JobsHandler(sub, n.Metrics, slog.New(slog.DiscardHandler)))
	rec, _ := do(t, s, req{method: "GET", path: "/v1/node", host: "attacker.example"})
	assert.Equal(t, http.StatusMisdirectedRequest, rec.Code)
	rec, _ = do(t, s, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob, hdr: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}})
	assert.Equal(t, http.StatusForbidden, rec.Code)
	rec, _ = do(t, s, req{method: "POST", path: "/v1/jobs", host: "127.0.0.1:4748", body: okJob, hdr: map[string]string{"Content-Type": "text/plain"}})
	assert.Equal(t, http.StatusUnsupportedMediaType, rec.Code)
	assert.Nil(t, sub.got.Module)
	rec, out := do(t, s, req{method: "GET", path: "/v1/node", host: "127.0.0.1:4748"})
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, n.Host.ID().String(), out["peer_id"])

	s.SetAccess(Access{Token: "0123456789abcdef0123456789abcdef"})
	rec, _ = do(t, s, req{method: "GET", path: "/v1/node", host: "127.0.0.1:4748"})
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	rec, _ = do(t, s, req{method: "GET", path: "/healthz", host: "127.0.0.1:4748"})
	assert.Equal(t, http.StatusOK, rec.Code)
}

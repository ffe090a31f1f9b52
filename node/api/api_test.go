package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/metrics"
)

func TestAPI8_ParseRequirements(t *testing.T) {
	req, limit, err := ParseRequirements(url.Values{"min_memory_mb": {"512"}, "arch": {"x86_64"}, "require_arch": {"true"}, "limit": {"5"}, "module_bytes": {"1000"}})
	require.NoError(t, err)
	assert.Equal(t, 512, req.MinMemoryMB)
	assert.Equal(t, "amd64", req.Arch, "aliases are normalised")
	assert.True(t, req.RequireArch)
	assert.Equal(t, int64(1000), req.MaxModuleBytes)
	assert.Equal(t, 5, limit)

	for _, tc := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"min_memory": {"1"}}, `unknown query parameter "min_memory"`},
		{url.Values{"limit": {"1", "2"}}, `limit: given 2 times`},
		{url.Values{"min_memory_mb": {"lots"}}, "min_memory_mb"},
		{url.Values{"min_cores": {"-1"}}, "min_cores"},
		{url.Values{"arch": {"z80"}}, "arch"},
		{url.Values{"require_arch": {"maybe"}}, "require_arch"},
		{url.Values{"require_arch": {"TRUE"}}, "require_arch"},
		{url.Values{"require_arch": {"f"}}, "require_arch"},
		{url.Values{"require_arch": {""}}, "require_arch"},
		{url.Values{"limit": {""}}, "limit"},
		{url.Values{"module_bytes": {""}}, "module_bytes"},
		{url.Values{"module_bytes": {"-5"}}, "module_bytes"},
		{url.Values{"limit": {"100000"}}, "limit"},
	} {
		_, _, err := ParseRequirements(tc.q)
		require.Error(t, err, tc.q)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// fakeSubmitter stands in for the network in this handler-level test.
type fakeSubmitter struct {
	res  *client.Result
	err  error
	got  client.Job
	opts client.Options
}

func (f *fakeSubmitter) Run(ctx context.Context, job client.Job, opts client.Options) (*client.Result, error) {
	f.got, f.opts = job, opts
	return f.res, f.err
}

func post(t *testing.T, h http.Handler, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body)))
	var out map[string]any
	b, _ := io.ReadAll(rec.Body)
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return rec.Code, out
}

func TestAPI10_JobsHandler(t *testing.T) {
	node := peer.ID("\x00\x24\x08\x01\x12\x20" + strings.Repeat("k", 32))
	sub := &fakeSubmitter{res: &client.Result{Node: node, Outcome: "exited", Stdout: []byte("cba\n"), ReceiptJSON: []byte(`{"version":"1"}`),
		Attempts: []client.Attempt{{Node: node, Outcome: client.AttemptOK}}}}
	h := JobsHandler(sub, metrics.New(), slog.New(slog.DiscardHandler))

	code, out := post(t, h, `{"module":"AGFzbQEAAAA=","args":["abc"],"stdin":"eA==","memory_mb":32,"replicas":2,"attempts":4}`)
	require.Equal(t, http.StatusOK, code, out)
	assert.Equal(t, []byte("\x00asm\x01\x00\x00\x00"), sub.got.Module)
	assert.Equal(t, []byte("x"), sub.got.Stdin)
	assert.Equal(t, 32, sub.got.MemoryMB)
	assert.Equal(t, 2, sub.got.Replicas)
	assert.Equal(t, 4, sub.got.Attempts)
	assert.Equal(t, "cba\n", out["stdout"])
	assert.Equal(t, "", out["stderr_base64"], "empty output is an empty string, not null")
	assert.Equal(t, node.String(), out["node"])
	assert.Equal(t, map[string]any{"version": "1"}, out["receipt"])

	for _, tc := range []struct{ body, want string }{
		{`{"module":"AGFzbQEAAAA="} xx`, "trailing data"},
		{`{"modul":"AGFzbQEAAAA="}`, `modul: unknown member`},
		{`{"module":"AGFzbQEAAAA=","module":"AGFzbQEAAAA="}`, `duplicate member name "module"`},
		{`{"MODULE":"AGFzbQEAAAA="}`, `MODULE: unknown member`},
		{`{"module":"AGFzbQEAAAA=","args":null}`, `args: must not be null`},
		{`{"module":"AGFzbQEAAAA=","memory_mb":1.5}`, `memory_mb: must be an integer`},
		{`{"module":"AGFzbQEAAAA=","require_arch":true}`, `require_arch: is true but arch is absent`},
		{`[]`, `want a JSON object`},
		{`{}`, "module"},
		{`{"module":"AGFzbQEAAAA=","memory_mb":99999}`, "memory_mb"},
		{`{"module":"AGFzbQEAAAA=","seed":3}`, "seed"},
		{`{"module":"AGFzbQEAAAA=","arch":"z80"}`, "arch"},
		{`{"module":"AGFzbQEAAAA=","args":["a\u0000b"]}`, "args[0]"},
		{`{"module":"AGFzbQEAAAA=","attempts":1,"replicas":2}`, "attempts"},
		{`{"module":"not base64!"}`, "module"},
	} {
		code, out := post(t, h, tc.body)
		assert.Equal(t, http.StatusBadRequest, code, tc.body)
		assert.Contains(t, out["error"], tc.want, tc.body)
	}

	sub.res, sub.err = nil, &client.Error{Err: errors.New("no node could run the job"),
		Attempts: []client.Attempt{{Node: node, Outcome: client.AttemptRejected, Reason: "queue_full"}}}
	code, out = post(t, h, `{"module":"AGFzbQEAAAA="}`)
	assert.Equal(t, http.StatusBadGateway, code)
	require.Len(t, out["attempts"], 1)
	assert.Equal(t, "queue_full", out["attempts"].([]any)[0].(map[string]any)["reason"])
}

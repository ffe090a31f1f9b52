package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// apiCases check a node's local HTTP API (docs/spec-api.md) over real
// HTTP. The jobs they submit run on the suite's worker node (Env.Worker),
// which joins the target's network: the API node does not run jobs itself.
func apiCases() []Case {
	return slices.Concat(apiReadCases(), apiFindBadQueryCases(), apiJobCases(), apiJobBadRequestCases(), apiNetworkCases())
}

// apiCase is a Case on the API side.
func apiCase(name string, reqs []string, run func(t *T)) Case {
	return Case{Name: "api/" + name, Reqs: reqs, Side: SideAPI, Needs: NeedAPI, Run: run}
}

// apiOutcomes are the outcomes of a 200 job answer (spec-api §4.2) and
// attemptOutcomes those of an attempt (§4.4).
var (
	apiOutcomes     = []string{"exited", "trapped", "timeout", "memory_limit", "invalid_module"}
	attemptOutcomes = []string{"ok", "rejected", "error", "timeout", "unreachable", "stream_error", "protocol",
		"bad_receipt", "disagreed", "cancelled"}
)

// apiCheckReq names the requirement of each receipt check (§6.1).
var apiCheckReq = map[string]string{"format": "API-17", "signer": "API-19", "signature": "API-20",
	"module_hash": "API-21", "input_hash": "API-22", "stdout_hash": "API-23", "stderr_hash": "API-23"}

func apiReadCases() []Case {
	return []Case{
		apiCase("transport/http-1.1", []string{"API-1"}, func(t *T) {
			a := t.APIGet("/healthz")
			a.Want(t, "API-1", http.StatusOK)
			t.Check(a.Proto == "HTTP/1.1", "API-1: the API answered over %s, want HTTP/1.1", a.Proto)
		}),
		apiCase("healthz/status-ok", []string{"API-3"}, func(t *T) {
			a := t.APIGet("/healthz")
			a.Want(t, "API-3", http.StatusOK)
			m := a.Object(t)
			t.Check(len(m) == 1 && m["status"] == "ok", `API-3: /healthz answered %s, want {"status":"ok"}`, compact(m))
		}),
		apiCase("node", []string{"API-3", "API-7"}, func(t *T) {
			a := t.APIGet("/v1/node")
			a.Want(t, "API-3", http.StatusOK)
			m := a.Object(t)
			id, _ := str(m, "peer_id")
			t.Check(id == t.Env().Target.ID.String(), "API-7: peer_id %q, the target is %s", id, t.Env().Target.ID)
			key, err := ref.PeerKey(id)
			if err != nil {
				t.Fatalf("API-7: peer_id %q carries no Ed25519 key: %v", id, err)
			}
			pub, _ := str(m, "public_key")
			t.Check(pub == hex.EncodeToString(key), "API-7: public_key %q is not the key peer_id carries (%x)", pub, key)
			addrs, ok := m["addrs"].([]any)
			t.Check(ok && len(addrs) > 0, "API-3: addrs is not a non-empty array: %v", m["addrs"])
			for _, x := range addrs {
				s, ok := x.(string)
				t.Check(ok && strings.HasSuffix(s, "/p2p/"+id), "API-3: address %v does not end in /p2p/<peer_id>", x)
			}
			_, ok = str(m, "version")
			t.Check(ok, "API-3: version is not a string")
			t.Check(isInt(m["peers"]) && isInt(m["routing_table_size"]), "API-3: peers %v or routing_table_size %v is not an integer", m["peers"], m["routing_table_size"])
			t.Check(isNum(m["uptime_seconds"]), "API-3: uptime_seconds %v is not a number", m["uptime_seconds"])
			switch r := m["record"].(type) {
			case nil:
				if _, present := m["record"]; !present {
					t.Errorf("API-3: the member record is missing (null until first published)")
				}
			case map[string]any:
				raw, _ := json.Marshal(r)
				if _, err := VerifyRecord(raw, id, time.Now()); err != nil {
					t.Errorf("API-3: record does not verify for %s: %v", id, err)
				}
			default:
				t.Errorf("API-3: record is neither an object nor null: %v", r)
			}
		}),
		apiCase("not-found", []string{"API-5"}, func(t *T) {
			for _, p := range []string{"/", "/v1", "/v1/nodes", "/v2/node", "/v1/jobs/1", "/healthz/x"} {
				a := t.APIGet(p)
				t.Check(a.Status == http.StatusNotFound, "API-5: GET %s answered %d, want 404", p, a.Status)
				t.Check(a.mediaType() != "application/json", "API-5: the 404 of GET %s is JSON, not plain text", p)
			}
		}),
		apiCase("method-not-allowed", []string{"API-5"}, func(t *T) {
			for _, c := range []struct{ method, path, allow string }{
				{http.MethodPost, "/healthz", "GET"}, {http.MethodDelete, "/v1/node", "GET"}, {http.MethodPut, "/v1/peers", "GET"},
				{http.MethodPost, "/v1/find", "GET"}, {http.MethodPost, "/metrics", "GET"}, {http.MethodGet, "/v1/jobs", "POST"},
				{http.MethodPut, "/v1/jobs", "POST"},
			} {
				var body []byte
				if c.method != http.MethodGet && c.method != http.MethodDelete {
					body = []byte("{}")
				}
				a := t.APIRequest(c.method, c.path, body)
				if a.Status != http.StatusMethodNotAllowed {
					t.Errorf("API-5: %s %s answered %d, want 405", c.method, c.path, a.Status)
					continue
				}
				allow := a.Header.Get("Allow")
				t.Check(slices.ContainsFunc(strings.Split(allow, ","), func(m string) bool { return strings.TrimSpace(m) == c.allow }),
					"API-5: the 405 of %s %s has Allow %q, which does not list %s", c.method, c.path, allow, c.allow)
				t.Check(a.mediaType() != "application/json", "API-5: the 405 of %s %s is JSON, not plain text", c.method, c.path)
			}
		}),
		apiCase("answers-in-time", []string{"API-6"}, func(t *T) {
			// A client sets its timeouts from §1's bounds: "well under a
			// second" (a loaded machine gets 5 s here) and 30 s for find.
			for _, p := range []string{"/healthz", "/v1/node", "/v1/peers", "/metrics"} {
				a := t.APIGet(p)
				t.Check(a.Status == http.StatusOK, "API-6: GET %s answered %d", p, a.Status)
				t.Check(a.Took < 5*time.Second, "API-6: GET %s took %s, not well under a second", p, a.Took)
			}
			a := t.APIGet("/v1/find")
			t.Check(a.Took < 30*time.Second, "API-6: GET /v1/find took %s, over 30 s", a.Took)
		}),
		apiCase("metrics", []string{"API-3"}, func(t *T) {
			apiNetwork(t)
			x := t.APIJob(map[string]any{"module": b64(t.Module("tiny"))})
			x.Verified(t)
			a := t.APIGet("/metrics")
			a.Want(t, "API-3", http.StatusOK)
			t.Check(a.mediaType() == "text/plain", "API-3: /metrics has Content-Type %q, want text/plain (the Prometheus text format)", a.Header.Get("Content-Type"))
			ok := false
			for _, line := range strings.Split(string(a.Body), "\n") {
				if strings.HasPrefix(line, `phase_client_jobs_total{result="ok"} `) {
					v := strings.TrimPrefix(line, `phase_client_jobs_total{result="ok"} `)
					ok = v != "0" && v != ""
				}
			}
			t.Check(ok, `API-3: after a job the API ran, /metrics has no non-zero phase_client_jobs_total{result="ok"}`)
		}),
		apiCase("peers", []string{"API-3"}, func(t *T) {
			w := apiNetwork(t)
			a := t.APIGet("/v1/peers")
			a.Want(t, "API-3", http.StatusOK)
			seen := false
			for _, p := range a.Array(t) {
				id, ok := str(p, "peer_id")
				t.Check(ok, "API-3: a peer without a string peer_id: %s", compact(p))
				seen = seen || id == w
				addrs, ok := p["addrs"].([]any)
				t.Check(ok && len(addrs) > 0, "API-3: peer %s: addrs %v is not a non-empty array", id, p["addrs"])
				d, _ := str(p, "direction")
				t.Check(d == "inbound" || d == "outbound", "API-3: peer %s: direction %q", id, d)
				t.Check(isNum(p["latency_ms"]), "API-3: peer %s: latency_ms %v is not a number", id, p["latency_ms"])
				_, ok = boolean(p, "in_routing_table")
				t.Check(ok, "API-3: peer %s: in_routing_table is not a boolean", id)
			}
			t.Check(seen, "API-3: /v1/peers does not list the suite's worker %s, which is connected", w)
		}),
		apiCase("find", []string{"API-3", "API-8"}, func(t *T) {
			w := apiNetwork(t)
			a := t.APIGet("/v1/find?abi=wasi_snapshot_preview1&limit=1000")
			a.Want(t, "API-8", http.StatusOK)
			found := a.Array(t)
			seen := false
			for _, f := range found {
				id, _ := str(f, "peer_id")
				t.Check(id != t.Env().Target.ID.String(), "API-3: /v1/find lists the API node itself")
				seen = seen || id == w
				_, ok := f["addrs"].([]any)
				t.Check(ok, "API-3: found %s: addrs %v is not an array", id, f["addrs"])
				_, ok = boolean(f, "live")
				t.Check(ok, "API-3: found %s: live is not a boolean", id)
				rec, ok := f["record"].(map[string]any)
				if !ok {
					t.Errorf("API-3: found %s: record is not an object", id)
					continue
				}
				raw, _ := json.Marshal(rec)
				if _, err := VerifyRecord(raw, id, time.Now()); err != nil {
					t.Errorf("API-3: found %s: its record does not verify: %v", id, err)
				}
			}
			t.Check(seen, "API-8: /v1/find does not list the suite's worker %s", w)
			a = t.APIGet("/v1/find?limit=1")
			a.Want(t, "API-8", http.StatusOK)
			t.Check(len(a.Array(t)) == 1, "API-8: limit=1 with at least one match listed %d nodes, want 1", len(a.Array(t)))
			// No match is 200 with [].
			other := otherArch(t, apiArchOf(t, found)...)
			a = t.APIGet("/v1/find?require_arch=true&arch=" + other)
			a.Want(t, "API-8", http.StatusOK)
			t.Check(len(a.Array(t)) == 0, "API-8: a query no node matches (arch %s required) answered %s, want []", other, a.Body)
		}),
		apiCase("find/query-bounds", []string{"API-8"}, func(t *T) {
			// Every parameter at its documented bounds, the aliases and both
			// boolean spellings: 200, whatever matches.
			for _, q := range []string{
				"runtime=wazero", "abi=wasi_snapshot_preview1", "arch=x86_64", "arch=aarch64", "arch=arm64&require_arch=false",
				"arch=amd64&require_arch=1", "arch=amd64&require_arch=0", "min_memory_mb=0", "min_memory_mb=16777216",
				"min_cores=4096", "module_bytes=0", "module_bytes=1048576", "timeout_seconds=604800", "max_load=0",
				"max_load=1048576", "limit=0", "limit=1000",
			} {
				a := t.APIGet("/v1/find?" + q)
				if a.Status != http.StatusOK {
					t.Errorf("API-8: /v1/find?%s answered %d, want 200: %s", q, a.Status, shorten(string(a.Body), 200))
					continue
				}
				a.Array(t)
			}
		}),
	}
}

// apiFindBadQueryCases: API-8's 400s, one case each.
func apiFindBadQueryCases() []Case {
	var out []Case
	for _, c := range []struct{ name, query, names string }{
		{"unknown-parameter", "colour=red", "colour"},
		{"other-case", "Limit=3", "Limit"},
		{"repeated", "limit=1&limit=2", "limit"},
		{"repeated-same-value", "arch=amd64&arch=amd64", "arch"},
		{"limit-over", "limit=1001", "limit"},
		{"limit-negative", "limit=-1", "limit"},
		{"limit-not-integer", "limit=2.5", "limit"},
		{"limit-text", "limit=twenty", "limit"},
		{"min-memory-over", "min_memory_mb=16777217", "min_memory_mb"},
		{"min-cores-over", "min_cores=4097", "min_cores"},
		{"timeout-over", "timeout_seconds=604801", "timeout_seconds"},
		{"max-load-over", "max_load=1048577", "max_load"},
		{"module-bytes-negative", "module_bytes=-1", "module_bytes"},
		{"require-arch-not-boolean", "require_arch=maybe", "require_arch"},
		{"require-arch-other-spelling", "arch=amd64&require_arch=TRUE", "require_arch"},
		{"require-arch-empty", "arch=amd64&require_arch=", "require_arch"},
		{"limit-empty", "limit=", "limit"},
		{"min-cores-empty", "min_cores=", "min_cores"},
		{"arch-unknown", "arch=sparc", "arch"},
		{"arch-other-case", "arch=AMD64", "arch"},
	} {
		out = append(out, apiCase("find/bad-query/"+c.name, []string{"API-8", "API-4", "API-3"}, func(t *T) {
			a := t.APIGet("/v1/find?" + c.query)
			a.APIError(t, "API-8", []int{http.StatusBadRequest}, []string{c.names})
		}))
	}
	return out
}

func apiJobCases() []Case {
	return []Case{
		apiCase("jobs/run", []string{"API-3", "API-9", "API-12", "API-13", "API-15", "API-16", "API-17", "API-19", "API-20",
			"API-21", "API-22", "API-23", "API-25", "API-26"}, func(t *T) {
			w := apiNetwork(t)
			// Quotes, tabs, <>&, non-ASCII and U+2028: the text must come
			// back byte for byte, unescaped (API-3).
			args := []string{"<&>", "tab\t\"quoted\"", "ü ☃ 😀 \u2028", ""}
			stdin := []byte("stdin line\n\x00\x01 binary tail")
			x := t.APIJob(map[string]any{"module": b64(t.Module("echo")), "args": args, "stdin": b64(stdin)})
			x.Verified(t)
			want := []byte("job\n")
			for _, s := range args {
				want = append(append(want, s...), '\n')
			}
			want = append(want, stdin...)
			t.Check(bytes.Equal(x.Stdout, want), "API-12: stdout_base64 %q, the guest wrote %q", x.Stdout, want)
			t.Check(x.M["outcome"] == "exited" && num(x.M["exit_code"]) == 0, "API-12: outcome %v exit_code %v, want exited 0", x.M["outcome"], x.M["exit_code"])
			t.Check(x.Node == w, "API-12: node %s, but the only node that can run jobs is the suite's worker %s", x.Node, w)
			t.Check(bytes.Contains(x.Raw, []byte("<&>")), "API-3: the answer does not carry <&> unescaped")
			_, has := x.M["replicas"]
			t.Check(!has, "API-12: a job without replicas has a replicas member")
		}),
		apiCase("jobs/requester-is-the-api-node", []string{"API-24"}, func(t *T) {
			apiNetwork(t)
			x := t.APIJob(map[string]any{"module": b64(t.Module("tiny"))})
			x.Verified(t)
			t.Check(x.Receipt.Str("requester") == t.Env().Target.ID.String(), "API-24: requester %q, the API node is %s",
				x.Receipt.Str("requester"), t.Env().Target.ID)
		}),
		apiCase("jobs/empty-output", []string{"API-13", "API-23"}, func(t *T) {
			apiNetwork(t)
			// trap.wat writes nothing before it traps.
			x := t.APIJob(map[string]any{"module": b64(t.Module("trap"))})
			x.Verified(t)
			for _, k := range []string{"stdout_base64", "stderr_base64"} {
				v, present := x.M[k]
				t.Check(present && (v == nil || v == ""), `API-13: empty output gives %s %v, want null or ""`, k, v)
			}
			for _, k := range []string{"stdout", "stderr"} {
				if v, present := x.M[k]; present {
					t.Check(v == "", "API-13: empty output gives %s %v", k, v)
				}
			}
		}),
		apiCase("jobs/binary-output", []string{"API-13", "API-23", "API-25"}, func(t *T) {
			apiNetwork(t)
			x := t.APIJob(map[string]any{"module": b64(t.Module("probe"))})
			x.Verified(t)
			t.Check(len(x.Stdout) == 64, "API-13: the probe module writes 64 bytes; stdout_base64 has %d", len(x.Stdout))
			if _, present := x.M["stdout"]; present {
				t.Check(utf8.Valid(x.Stdout), "API-13: stdout text is present for bytes that are not UTF-8")
			}
		}),
		apiCase("jobs/outcomes", []string{"API-12", "API-25"}, func(t *T) {
			apiNetwork(t)
			for _, c := range []struct {
				module  []byte
				outcome string
				exit    int64
			}{
				{t.Module("exit7"), "exited", 7},
				{t.Module("trap"), "trapped", -1},
				{[]byte("this is not WebAssembly"), "invalid_module", -1},
			} {
				x := t.APIJob(map[string]any{"module": b64(c.module), "timeout_seconds": 2})
				x.Verified(t)
				t.Check(x.M["outcome"] == c.outcome && num(x.M["exit_code"]) == c.exit, "API-12: outcome %v exit_code %v, want %s %d",
					x.M["outcome"], x.M["exit_code"], c.outcome, c.exit)
			}
		}),
		apiCase("jobs/every-member", []string{"API-9", "API-10", "API-11"}, func(t *T) {
			w := apiNetwork(t)
			arch := apiArchOf(t, []map[string]any{t.apiFound(w)})[0]
			x := t.APIJob(map[string]any{"module": b64(t.Module("echo")), "args": []string{"a"}, "stdin": b64([]byte("in")),
				"memory_mb": 20, "timeout_seconds": 2, "cpu_cores": 1, "arch": arch, "require_arch": true,
				"attempts": 3, "replicas": 1, "deterministic": true, "seed": 7})
			x.Verified(t)
			lim := x.Receipt.Limits()
			t.Check(lim["memory_mb"] == 20 && lim["timeout_ms"] == 2000, "API-11: memory_mb 20 and timeout_seconds 2 ran with limits %v", lim)
			t.Check(x.Receipt.Bool("deterministic"), "API-12: deterministic was asked, the receipt says it did not run so")
		}),
		apiCase("jobs/defaults-and-clamping", []string{"API-11"}, func(t *T) {
			w := apiNetwork(t)
			rec := t.apiFound(w)["record"].(map[string]any)
			l, _ := rec["limits"].(map[string]any)
			maxMem, maxTmo, total := num(l["max_memory_mb"]), num(l["max_timeout_seconds"]), num(rec["memory_mb"])
			for _, req := range []map[string]any{
				{"module": b64(t.Module("tiny"))},
				{"module": b64(t.Module("tiny")), "memory_mb": 0, "timeout_seconds": 0, "cpu_cores": 0},
			} {
				x := t.APIJob(req)
				x.Verified(t)
				lim := x.Receipt.Limits()
				t.Check(lim["memory_mb"] == min(256, maxMem) && lim["timeout_ms"] == min(30, maxTmo)*1000,
					"API-11: the defaults (256 MB, 30 s) on a node whose maximum is %d MB, %d s ran with limits %v", maxMem, maxTmo, lim)
			}
			// Above the per-job maximum but within the node's total: runs,
			// clamped.
			if over := min(total, 32768); over > maxMem {
				x := t.APIJob(map[string]any{"module": b64(t.Module("tiny")), "memory_mb": over})
				x.Verified(t)
				t.Check(x.Receipt.Limits()["memory_mb"] == maxMem, "API-11: memory_mb %d on a node whose per-job maximum is %d ran with %v",
					over, maxMem, x.Receipt.Limits())
			}
		}),
		apiCase("jobs/matches-what-nodes-would-refuse", []string{"CAP-6", "CAP-5"}, func(t *T) {
			// The worker is the only node that runs jobs (the exclusive
			// cases' nodes are not up): a job it would refuse is not
			// offered to it; one it would clamp, or that prefers another
			// arch, runs on it.
			w := apiNetwork(t)
			rec := t.apiFound(w)["record"].(map[string]any)
			l, _ := rec["limits"].(map[string]any)
			tiny := b64(t.Module("tiny"))
			for name, req := range map[string]map[string]any{
				"stdin over max_stdin_bytes":   {"module": tiny, "stdin": b64(make([]byte, num(l["max_stdin_bytes"])+1))},
				"module over max_module_bytes": {"module": b64(append(t.Module("tiny"), make([]byte, num(l["max_module_bytes"]))...))},
				"more cores than the record's": {"module": tiny, "cpu_cores": num(rec["cpu_cores"]) + 1},
			} {
				if c, ok := req["cpu_cores"].(int64); ok && c > 64 {
					continue
				}
				a := t.APIPost("/v1/jobs", req)
				if a.Status != http.StatusBadGateway {
					t.Errorf("CAP-6: a job with %s answered %d, want 502: no node can take it", name, a.Status)
					continue
				}
				m := a.Object(t)
				for _, at := range checkAttempts(t, m) {
					t.Check(at["node"] != w, "CAP-6: a job with %s was offered to %s, whose record says it would refuse it: %s", name, w, compact(at))
				}
			}
			if over := min(num(rec["memory_mb"]), 32768); over > num(l["max_memory_mb"]) {
				x := t.APIJob(map[string]any{"module": tiny, "memory_mb": over})
				x.Verified(t)
			}
			other := otherArch(t, apiArchOf(t, []map[string]any{{"record": rec}})...)
			a := t.APIPost("/v1/jobs", map[string]any{"module": tiny, "arch": other})
			t.Check(a.Status == http.StatusOK, "CAP-5: a job that prefers arch %s (not required) answered %d: arch is not a filter", other, a.Status)
		}),
		apiCase("jobs/no-node-matches", []string{"API-15", "API-4"}, func(t *T) {
			w := apiNetwork(t)
			other := otherArch(t, apiArchOf(t, []map[string]any{t.apiFound(w)})...)
			a := t.APIPost("/v1/jobs", map[string]any{"module": b64(t.Module("tiny")), "arch": other, "require_arch": true})
			m := a.APIError(t, "API-15", []int{http.StatusBadGateway}, nil, "attempts")
			at, ok := m["attempts"].([]any)
			t.Check(ok && len(at) == 0, "API-15: no node was tried, yet attempts is %v (want [])", m["attempts"])
		}),
	}
}

// apiJobBadRequestCases: API-10's 400s, one case each. body is the raw
// request; names are what the error must mention.
func apiJobBadRequestCases() []Case {
	mod := func(t *T) string { return b64(t.Module("tiny")) }
	obj := func(members string) func(t *T) string {
		return func(t *T) string {
			if members == "" {
				return `{"module":"` + mod(t) + `"}`
			}
			return `{"module":"` + mod(t) + `",` + members + `}`
		}
	}
	raw := func(s string) func(*T) string { return func(*T) string { return s } }
	manyArgs := `"args":[` + strings.TrimSuffix(strings.Repeat(`"a",`, 1025), ",") + `]`
	var out []Case
	for _, c := range []struct {
		name  string
		body  func(t *T) string
		names []string
	}{
		{"not-json", raw(`{"module":`), nil},
		{"empty-body", raw(``), nil},
		{"array", raw(`[]`), nil},
		{"string", raw(`"module"`), nil},
		{"trailing-data", func(t *T) string { return obj("")(t) + ` {}` }, nil},
		{"unknown-member", obj(`"gpu":true`), []string{"gpu"}},
		{"duplicate-member", obj(`"memory_mb":16,"memory_mb":32`), []string{"memory_mb"}},
		{"duplicate-after-escapes", obj(`"memory_mb":16,"\u006demory_mb":32`), []string{"memory_mb"}},
		{"null-member", obj(`"args":null`), []string{"args"}},
		{"other-case-name", obj(`"Memory_MB":16`), []string{"Memory_MB"}},
		{"module-missing", raw(`{"args":["a"]}`), []string{"module"}},
		{"module-empty", raw(`{"module":""}`), []string{"module"}},
		{"module-not-base64", raw(`{"module":"not base64!"}`), []string{"module"}},
		{"module-url-safe-base64", raw(`{"module":"_-8"}`), []string{"module"}},
		{"module-unpadded", raw(`{"module":"AGFzbQ"}`), []string{"module"}},
		{"module-not-string", raw(`{"module":123}`), []string{"module"}},
		{"stdin-not-base64", obj(`"stdin":"%%%"`), []string{"stdin"}},
		{"memory-over", obj(`"memory_mb":32769`), []string{"memory_mb"}},
		{"memory-negative", obj(`"memory_mb":-1`), []string{"memory_mb"}},
		{"memory-fraction", obj(`"memory_mb":1.5`), []string{"memory_mb"}},
		{"memory-exponent", obj(`"memory_mb":1e2`), []string{"memory_mb"}},
		{"memory-string", obj(`"memory_mb":"16"`), []string{"memory_mb"}},
		{"timeout-over", obj(`"timeout_seconds":3601`), []string{"timeout_seconds"}},
		{"cores-over", obj(`"cpu_cores":65`), []string{"cpu_cores"}},
		{"attempts-over", obj(`"attempts":101`), []string{"attempts"}},
		{"replicas-over", obj(`"replicas":17`), []string{"replicas"}},
		{"attempts-below-replicas", obj(`"attempts":2,"replicas":3`), []string{"attempts"}},
		{"too-many-args", obj(manyArgs), []string{"args"}},
		{"arg-with-nul", obj(`"args":["a\u0000b"]`), []string{"args"}},
		{"arg-not-string", obj(`"args":[1]`), []string{"args"}},
		{"args-not-array", obj(`"args":"a"`), []string{"args"}},
		{"arch-unknown", obj(`"arch":"sparc"`), []string{"arch"}},
		{"require-arch-without-arch", obj(`"require_arch":true`), []string{"require_arch"}},
		{"require-arch-not-boolean", obj(`"arch":"amd64","require_arch":"yes"`), []string{"require_arch"}},
		{"seed-without-deterministic", obj(`"seed":5`), []string{"seed"}},
		{"deterministic-not-boolean", obj(`"deterministic":1`), []string{"deterministic"}},
	} {
		out = append(out, apiCase("jobs/bad-request/"+c.name, []string{"API-10", "API-4", "API-3"}, func(t *T) {
			a := t.APIPost("/v1/jobs", c.body(t))
			a.APIError(t, "API-10", []int{http.StatusBadRequest}, c.names, "attempts")
		}))
	}
	out = append(out, apiCase("jobs/bad-request/body-over-128-MiB", []string{"API-10", "API-4"}, func(t *T) {
		// {"module":"AAAA…"} one byte over 128 MiB, streamed: the suite
		// holds none of it.
		const limit = 128 << 20
		head, tail := `{"module":"`, `"}`
		n := int64(limit + 1 - len(head) - len(tail))
		n -= n % 4
		for int64(len(head))+n+int64(len(tail)) <= limit {
			n += 4
		}
		body := io.MultiReader(strings.NewReader(head), repeatReader('A', n), strings.NewReader(tail))
		t.Note("POST /v1/jobs with a %d-byte body", int64(len(head))+n+int64(len(tail)))
		a := t.apiDo(http.MethodPost, "/v1/jobs", body, int64(len(head))+n+int64(len(tail)))
		a.APIError(t, "API-10", []int{http.StatusBadRequest}, nil, "attempts")
	}))
	return out
}

// APIJobAnswer is a 200 answer of POST /v1/jobs as the suite read it.
type APIJobAnswer struct {
	A       *APIResp
	Raw     []byte
	M       map[string]any
	Node    string
	Stdout  []byte
	Stderr  []byte
	Receipt ref.Receipt
	req     map[string]any
}

// APIJob POSTs a job request and expects 200.
func (t *T) APIJob(req map[string]any) *APIJobAnswer {
	a := t.APIPost("/v1/jobs", req)
	a.Want(t, "API-15", http.StatusOK)
	return &APIJobAnswer{A: a, Raw: a.Body, M: a.Object(t), req: req}
}

// Verified checks a 200 answer as a client of the API must (§6.1, in its
// order) and that the node said what API-12 asks: a receipt that verifies
// against node's key and binds the module, input and output bytes
// returned, and a response that agrees with it.
func (x *APIJobAnswer) Verified(t *T) *APIJobAnswer {
	m := x.M
	var ok bool
	if x.Node, ok = str(m, "node"); !ok {
		t.Fatalf("API-12: node is not a string: %v", m["node"])
	}
	key, err := ref.PeerKey(x.Node)
	if err != nil {
		t.Fatalf("API-26: node %q is not an Ed25519 peer ID: %v", x.Node, err)
	}
	for _, k := range []string{"stdout", "stderr"} {
		var b []byte
		switch v := m[k+"_base64"].(type) {
		case nil: // null is empty (API-13)
			if _, present := m[k+"_base64"]; !present {
				t.Errorf("API-12: %s_base64 is missing", k)
			}
		case string:
			if b, err = base64.StdEncoding.Strict().DecodeString(v); err != nil {
				t.Fatalf("API-13: %s_base64 is not standard base64: %v", k, err)
			}
		default:
			t.Fatalf("API-13: %s_base64 is neither a string nor null: %v", k, v)
		}
		if text, present := m[k]; present {
			s, ok := text.(string)
			t.Check(ok && s == string(b), "API-13: %s text %q differs from the %d bytes of %s_base64", k, text, len(b), k)
		}
		if k == "stdout" {
			x.Stdout = b
		} else {
			x.Stderr = b
		}
	}
	rcpt, ok := m["receipt"].(map[string]any)
	if !ok {
		t.Fatalf("API-12: receipt is not an object: %v", m["receipt"])
	}
	raw, _ := json.Marshal(rcpt)
	mod, _ := base64.StdEncoding.DecodeString(x.req["module"].(string))
	var args []string
	if a, ok := x.req["args"].([]string); ok {
		args = a
	}
	var stdin []byte
	if s, ok := x.req["stdin"].(string); ok {
		stdin, _ = base64.StdEncoding.DecodeString(s)
	}
	r, err := ref.VerifyReceipt(raw, ref.Expect{Signer: key, ModuleHash: ref.Hash(mod), InputHash: ref.InputHash(args, stdin),
		Stdout: x.Stdout, Stderr: x.Stderr, CheckOutput: true})
	if err != nil {
		var ce *ref.CheckError
		req := "API-16"
		if errors.As(err, &ce) && apiCheckReq[ce.Check] != "" {
			req = apiCheckReq[ce.Check]
		}
		t.Fatalf("%s: API-12: the receipt of a 200 answer fails check %v", req, err)
	}
	x.Receipt = r
	// response (API-25)
	for _, k := range []string{"outcome", "stdout_truncated", "stderr_truncated"} {
		t.Check(Marshal(m[k]) == Marshal(r[k]), "API-25: %s is %v in the answer, %v in the receipt", k, m[k], r[k])
	}
	t.Check(isInt(m["exit_code"]) && num(m["exit_code"]) == r.Int("exit_code"), "API-25: exit_code is %v in the answer, %d in the receipt", m["exit_code"], r.Int("exit_code"))
	o, _ := str(m, "outcome")
	t.Check(slices.Contains(apiOutcomes, o), "API-12: outcome %q is not one of %v", o, apiOutcomes)
	t.Check(isNum(m["wall_time_ms"]), "API-12: wall_time_ms %v is not a number", m["wall_time_ms"])
	if d, present := m["detail"]; present {
		_, ok := d.(string)
		t.Check(ok, "API-12: detail %v is not a string", d)
	}
	// attempts: every node tried, the one that ran it among them
	ran := false
	for _, at := range checkAttempts(t, m) {
		ran = ran || at["node"] == x.Node && at["outcome"] == "ok"
	}
	t.Check(ran, "API-15: attempts does not list node %s as ok", x.Node)
	return x
}

// checkAttempts checks the attempts member (§4.4) and returns it.
func checkAttempts(t *T, m map[string]any) []map[string]any {
	list, ok := m["attempts"].([]any)
	if !ok {
		t.Fatalf("API-15: attempts is not an array: %v", m["attempts"])
	}
	var out []map[string]any
	for i, e := range list {
		at, ok := e.(map[string]any)
		if !ok {
			t.Errorf("API-15: attempt %d is not an object", i)
			continue
		}
		id, _ := str(at, "node")
		if _, err := ref.PeerKey(id); err != nil {
			t.Errorf("API-15: attempt %d: node %q is not a peer ID", i, id)
		}
		o, _ := str(at, "outcome")
		t.Check(slices.Contains(attemptOutcomes, o), "API-15: attempt %d: outcome %q is not one of %v", i, o, attemptOutcomes)
		t.Check(isNum(at["duration_ms"]), "API-15: attempt %d: duration_ms %v is not a number", i, at["duration_ms"])
		for _, k := range []string{"reason", "detail"} {
			if v, present := at[k]; present {
				_, ok := v.(string)
				t.Check(ok, "API-15: attempt %d: %s is not a string", i, k)
			}
		}
		out = append(out, at)
	}
	return out
}

// apiNetwork starts the suite's worker, joined to the target, and waits
// until the API node's /v1/find lists it; it returns the worker's peer ID.
func apiNetwork(t *T) string {
	w, err := t.Env().Worker(t.Ctx())
	if err != nil {
		t.Fatalf("%v", err)
	}
	id := w.Host.ID().String()
	t.apiFound(id)
	return id
}

// apiFound waits (up to 60 s) until /v1/find lists id, and returns its
// entry.
func (t *T) apiFound(id string) map[string]any {
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := t.APIGet("/v1/find?limit=1000")
		if a.Status == http.StatusOK {
			for _, f := range a.Array(t) {
				if f["peer_id"] == id {
					if _, ok := f["record"].(map[string]any); !ok {
						t.Fatalf("API-3: /v1/find lists %s without a record", id)
					}
					return f
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("API-8: /v1/find did not list %s within 60 s (last answer %d %s)", id, a.Status, shorten(string(a.Body), 200))
		}
		time.Sleep(300 * time.Millisecond) // records settle in the DHT: poll
	}
}

// apiArchOf returns the arch of each found entry's record.
func apiArchOf(t *T, found []map[string]any) []string {
	var out []string
	for _, f := range found {
		if r, ok := f["record"].(map[string]any); ok {
			if a, ok := r["arch"].(string); ok {
				out = append(out, a)
			}
		}
	}
	return out
}

// otherArch is a known architecture none of these nodes (nor the target)
// has.
func otherArch(t *T, have ...string) string {
	if a, ok := t.Record()["arch"].(string); ok {
		have = append(have, a)
	}
	for _, a := range []string{"s390x", "mips64le", "ppc64le", "riscv64", "loong64"} {
		if !slices.Contains(have, a) {
			return a
		}
	}
	t.Fatalf("no architecture left that no node has")
	return ""
}

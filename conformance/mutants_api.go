package conformance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
)

// apiMutants break Plasm's local HTTP API the way an API server plausibly
// goes wrong; the API cases must fail on each, naming what it breaks.
func apiMutants() []Mutant {
	return []Mutant{
		{Name: "api-html-escaping", Breaks: []string{"API-3"}, About: "writes JSON with encoding/json's default HTML escaping",
			API: rewriteAnswer(func(r *http.Request, rec *httptest.ResponseRecorder) {
				if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
					rec.Body = bytes.NewBuffer(reencode(rec.Body.Bytes(), nil))
				}
			})},
		{Name: "api-lenient-query", Breaks: []string{"API-8"}, About: "drops unknown and repeated /v1/find parameters instead of refusing them",
			API: func(h http.Handler) http.Handler {
				known := []string{"runtime", "abi", "arch", "require_arch", "min_memory_mb", "min_cores", "module_bytes", "timeout_seconds", "max_load", "limit"}
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/v1/find" {
						q, clean := r.URL.Query(), url.Values{}
						for _, k := range known {
							if v := q.Get(k); v != "" {
								clean.Set(k, v)
							}
						}
						r.URL.RawQuery = clean.Encode()
					}
					h.ServeHTTP(w, r)
				})
			}},
		{Name: "api-text-errors", Breaks: []string{"API-4"}, About: "answers its own errors as plain text",
			API: rewriteAnswer(func(r *http.Request, rec *httptest.ResponseRecorder) {
				if rec.Code >= 400 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
					var e struct{ Error string }
					_ = json.Unmarshal(rec.Body.Bytes(), &e)
					rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
					rec.Body = bytes.NewBufferString(e.Error + "\n")
				}
			})},
		{Name: "api-unprocessable", Breaks: []string{"API-10"}, About: "refuses malformed job requests with 422",
			API: rewriteAnswer(func(r *http.Request, rec *httptest.ResponseRecorder) {
				if r.URL.Path == "/v1/jobs" && rec.Code == http.StatusBadRequest {
					rec.Code = http.StatusUnprocessableEntity
				}
			})},
		{Name: "api-small-default-memory", Breaks: []string{"API-11"}, About: "asks for 32 MB when memory_mb is zero or absent",
			API: func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/v1/jobs" {
						b, _ := io.ReadAll(r.Body)
						b = reencode(b, func(m map[string]any) {
							if v, ok := m["memory_mb"]; !ok || v == json.Number("0") {
								m["memory_mb"] = 32
							}
						})
						r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
					}
					h.ServeHTTP(w, r)
				})
			}},
		{Name: "api-drop-attempts", Breaks: []string{"API-15"}, About: "leaves attempts out of a failed job's answer",
			API: rewriteAnswer(func(r *http.Request, rec *httptest.ResponseRecorder) {
				if r.URL.Path == "/v1/jobs" && rec.Code == http.StatusBadGateway {
					rec.Body = bytes.NewBuffer(reencode(rec.Body.Bytes(), func(m map[string]any) { delete(m, "attempts") }))
				}
			})},
		{Name: "api-stale-text", Breaks: []string{"API-13"}, About: "writes stdout text that differs from stdout_base64",
			API: rewriteAnswer(func(r *http.Request, rec *httptest.ResponseRecorder) {
				if r.URL.Path == "/v1/jobs" && rec.Code == http.StatusOK {
					rec.Body = bytes.NewBuffer(reencode(rec.Body.Bytes(), func(m map[string]any) {
						if s, ok := m["stdout"].(string); ok {
							m["stdout"] = strings.ToUpper(s) + "."
						}
					}))
				}
			})},
		{Name: "api-rounded-receipt", Breaks: []string{"API-12"}, About: "rounds the receipt's wall_time_ms up to whole seconds",
			API: rewriteAnswer(func(r *http.Request, rec *httptest.ResponseRecorder) {
				if r.URL.Path == "/v1/jobs" && rec.Code == http.StatusOK {
					rec.Body = bytes.NewBuffer(reencode(rec.Body.Bytes(), func(m map[string]any) {
						if rc, ok := m["receipt"].(map[string]any); ok {
							rc["wall_time_ms"] = 1000
						}
					}))
				}
			})},
	}
}

// rewriteAnswer serves the request, lets edit change the recorded
// answer, and writes it.
func rewriteAnswer(edit func(r *http.Request, rec *httptest.ResponseRecorder)) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			edit(r, rec)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	}
}

// reencode decodes a JSON value, lets f change it when it is an object,
// and encodes it with encoding/json's defaults (HTML escaping on).
func reencode(b []byte, f func(m map[string]any)) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return b
	}
	if m, ok := v.(map[string]any); ok && f != nil {
		f(m)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return append(out, '\n')
}

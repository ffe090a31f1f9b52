package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// The API cases speak plain HTTP/1.1 with net/http and read answers with
// the suite's own JSON reading (ref), never with node/api's types: a bug
// shared by the API's encoder and its decoder cannot hide.

// APIResp is one answer of the target's API, read whole.
type APIResp struct {
	Method, Path string
	Status       int
	Proto        string
	Header       http.Header
	Body         []byte
	Took         time.Duration
}

// apiTimeout bounds every request (API-6); a job may take the API node's
// whole job deadline, which the suite's short jobs stay far below.
const apiTimeout = 2 * time.Minute

// APIRequest sends method path with body (nil: none) to the target's API
// as a well-behaved client does: a proper Host, Content-Type and Accept
// application/json, a timeout. hdr are extra "Name: value" headers (a
// value of "-" removes the header).
func (t *T) APIRequest(method, path string, body []byte, hdr ...string) *APIResp {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
		t.line("sent", fmt.Sprintf("%s %s %s", method, path, shorten(string(body), 400)))
	} else {
		t.line("sent", method+" "+path)
	}
	return t.apiDo(method, path, r, int64(len(body)), hdr...)
}

func (t *T) apiDo(method, path string, body io.Reader, size int64, hdr ...string) *APIResp {
	if t.env.API == "" {
		t.NA("the target has no API the suite may use")
	}
	ctx, cancel := context.WithTimeout(t.ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+t.env.API+path, body)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, path, err)
	}
	if body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		if v = strings.TrimSpace(v); v == "-" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	// One connection per request: a case never depends on another's
	// keep-alive state, and nothing lingers after it.
	tr := &http.Transport{DisableKeepAlives: true, ForceAttemptHTTP2: false}
	defer tr.CloseIdleConnections()
	start := time.Now()
	resp, err := (&http.Client{Transport: tr, Timeout: apiTimeout}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	a := &APIResp{Method: method, Path: path, Status: resp.StatusCode, Proto: resp.Proto, Header: resp.Header, Body: b, Took: time.Since(start)}
	t.line("got", fmt.Sprintf("%d %s %s", a.Status, resp.Header.Get("Content-Type"), shorten(string(b), 500)))
	return a
}

// APIGet is a GET.
func (t *T) APIGet(path string) *APIResp { return t.APIRequest(http.MethodGet, path, nil) }

// APIPost POSTs v as JSON (a string or []byte goes as it is).
func (t *T) APIPost(path string, v any) *APIResp {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatalf("encoding the request: %v", err)
		}
		b = bytes.TrimSpace(buf.Bytes())
	}
	return t.APIRequest(http.MethodPost, path, b)
}

func (a *APIResp) what() string { return a.Method + " " + a.Path }

// mediaType is the answer's Content-Type without parameters.
func (a *APIResp) mediaType() string {
	mt, _, err := mime.ParseMediaType(a.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// JSON checks API-3 (Content-Type application/json, one JSON value, no
// escaped <, > or &) and returns the value, numbers as json.Number.
func (a *APIResp) JSON(t *T) any {
	if mt := a.mediaType(); mt != "application/json" {
		t.Errorf("API-3: %s answered Content-Type %q, want application/json", a.what(), a.Header.Get("Content-Type"))
	}
	for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`} {
		if bytes.Contains(bytes.ToLower(a.Body), []byte(esc)) {
			t.Errorf("API-3: %s escapes a character as %s", a.what(), esc)
		}
	}
	v, err := ref.Decode(a.Body)
	if err != nil {
		t.Fatalf("API-3: %s: the body is not one JSON value: %v", a.what(), err)
	}
	return v
}

// Object is JSON that must be an object.
func (a *APIResp) Object(t *T) map[string]any {
	m, ok := a.JSON(t).(map[string]any)
	if !ok {
		t.Fatalf("%s: the body is not a JSON object", a.what())
	}
	return m
}

// Array is JSON that must be an array of objects.
func (a *APIResp) Array(t *T) []map[string]any {
	v, ok := a.JSON(t).([]any)
	if !ok {
		t.Fatalf("%s: the body is not a JSON array", a.what())
	}
	out := make([]map[string]any, 0, len(v))
	for i, e := range v {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: element %d is not an object", a.what(), i)
		}
		out = append(out, m)
	}
	return out
}

// Status ends the case unless the answer has one of codes.
func (a *APIResp) Want(t *T, req string, codes ...int) {
	if !slices.Contains(codes, a.Status) {
		t.Fatalf("%s: %s answered %d, want %v: %s", req, a.what(), a.Status, codes, shorten(string(a.Body), 300))
	}
}

// APIError checks an error answer by API-4: a status in codes (4xx/5xx),
// JSON, an object whose error is a non-empty string that mentions every
// one of names; extra lists the other members the object may have.
func (a *APIResp) APIError(t *T, req string, codes []int, names []string, extra ...string) map[string]any {
	a.Want(t, req, codes...)
	if a.Status < 400 || a.Status > 599 {
		t.Errorf("API-4: an error with status %d", a.Status)
	}
	m := a.Object(t)
	msg, ok := m["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("API-4: %s: the error body has no non-empty string member error: %s", a.what(), shorten(string(a.Body), 300))
	}
	for k := range m {
		if k != "error" && !slices.Contains(extra, k) {
			t.Errorf("API-4: %s: the error body has member %q", a.what(), k)
		}
	}
	for _, n := range names {
		if !strings.Contains(msg, n) {
			t.Errorf("%s: the error %q does not name %s", req, msg, n)
		}
	}
	return m
}

// b64 is standard base64 with padding (RFC 4648 §4), as API-9 asks.
func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// str, boolean and isNum read decoded JSON members.
func str(m map[string]any, k string) (string, bool) { s, ok := m[k].(string); return s, ok }

func boolean(m map[string]any, k string) (bool, bool) { b, ok := m[k].(bool); return b, ok }

func isNum(v any) bool { _, ok := v.(json.Number); return ok }

// isInt is a JSON number written as an integer.
func isInt(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := ref.Integer(n)
	return err == nil
}

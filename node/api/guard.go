package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/phase-protocol/plasm/node/phase"
)

// Access is who may use the API (spec-api §1.1). The zero value allows
// loopback and IP-literal Hosts, no browser origin, and needs no token.
type Access struct {
	// Addr is the address the API listens on (host:port), whose host is
	// accepted as a Host.
	Addr string
	// Hosts are further Host names accepted (API-30).
	Hosts []string
	// Origins are the browser origins allowed to call the API (API-31).
	Origins []string
	// Token, when not empty, is required as a bearer token on every
	// endpoint except /healthz (API-33).
	Token string
}

// maxPreflightAge is how long a browser may cache an allowed preflight.
const maxPreflightAge = "600"

// guard applies Access in front of h: Host, then Origin, then the token,
// then the Content-Type of a request with a body. Every refusal is a JSON
// error that names what was refused.
type guard struct {
	next    http.Handler
	hosts   map[string]bool
	anyIP   bool // the API listens on a wildcard address: every IP literal is its own
	origins map[string]bool
	token   [sha256.Size]byte
	hasTok  bool
}

func newGuard(next http.Handler, a Access) *guard {
	g := &guard{next: next, hosts: map[string]bool{"localhost": true}, origins: map[string]bool{}}
	for _, h := range a.Hosts {
		g.hosts[normHost(h)] = true
	}
	if a.Addr != "" {
		if h, _, err := net.SplitHostPort(a.Addr); err == nil {
			if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
				g.anyIP = true
			} else if h != "" {
				g.hosts[normHost(h)] = true
			} else {
				g.anyIP = true // ":4748" listens everywhere
			}
		}
	}
	for _, o := range a.Origins {
		g.origins[strings.ToLower(o)] = true
	}
	if a.Token != "" {
		g.token, g.hasTok = sha256.Sum256([]byte(a.Token)), true
	}
	return g
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// hostAllowed: DNS rebinding points a name the attacker owns at 127.0.0.1,
// so the browser sends that name as Host. Loopback names and the API's own
// address cannot be rebound by an outsider; neither can an IP literal,
// which no DNS answer is involved in.
func (g *guard) hostAllowed(hostport string) bool {
	if hostport == "" {
		return false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = normHost(host)
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() || g.anyIP || g.hosts[ip.String()] || g.hosts[host]
	}
	return g.hosts[host]
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.hostAllowed(r.Host) {
		writeError(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not this API's address or a loopback name (API-30: DNS rebinding guard; add it to api_access.allowed_hosts if it is yours)", clip(r.Host)))
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !g.origins[strings.ToLower(origin)] {
			writeError(w, http.StatusForbidden, fmt.Errorf("origin %q is not allowed to use this API (API-31: cross-origin browser requests are refused unless listed in api_access.allowed_origins)", clip(origin)))
			return
		}
		// An allowed origin may read answers, and nothing else may.
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", maxPreflightAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	} else if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		// A browser request from another site that carries no Origin
		// (a GET from <script> or <img>): never the operator's tools.
		writeError(w, http.StatusForbidden, fmt.Errorf("Sec-Fetch-Site %q: cross-site browser requests are refused (API-31)", clip(site)))
		return
	}
	if g.hasTok && r.URL.Path != "/healthz" && !g.tokenOK(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="plasmd"`)
		msg := "missing Authorization: Bearer token (API-33: this API requires the token in the node's token file)"
		if r.Header.Get("Authorization") != "" {
			msg = "wrong bearer token (API-33)"
		}
		writeError(w, http.StatusUnauthorized, fmt.Errorf("%s", msg))
		return
	}
	if hasBody(r.Method) {
		ct := r.Header.Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: a %s must be application/json (API-32)", clip(ct), r.Method))
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// tokenOK compares in constant time; hashing first hides the length too.
func (g *guard) tokenOK(header string) bool {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], g.token[:]) == 1
}

// hasBody: the methods a browser may send with a body. GET, HEAD and
// OPTIONS carry none the API reads.
func hasBody(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// clip keeps a request's own text short in an error.
func clip(s string) string { return phase.Clip(s, 100) }

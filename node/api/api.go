// Package api is the node's local HTTP API: node info, peers, capable
// peers, job submission, Prometheus metrics and a health check. It binds
// to loopback by default; non-Go clients (the PHP example) use it.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/datadir"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/version"
)

// NodeInfo is GET /v1/node.
type NodeInfo struct {
	PeerID           string       `json:"peer_id"`
	PublicKey        string       `json:"public_key"` // Ed25519, lowercase hex
	Addrs            []string     `json:"addrs"`
	Version          string       `json:"version"`
	Peers            int          `json:"peers"`
	RoutingTableSize int          `json:"routing_table_size"`
	UptimeSeconds    float64      `json:"uptime_seconds"`
	Record           *caps.Record `json:"record"` // null until first published
}

// PeerInfo is one entry of GET /v1/peers.
type PeerInfo struct {
	PeerID    string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	Direction string   `json:"direction"` // inbound or outbound (first connection)
	LatencyMS float64  `json:"latency_ms"`
	InDHT     bool     `json:"in_routing_table"`
}

// FoundInfo is one entry of GET /v1/find.
type FoundInfo struct {
	PeerID string       `json:"peer_id"`
	Addrs  []string     `json:"addrs"`
	Live   bool         `json:"live"`
	Record *caps.Record `json:"record"`
}

// Server serves the API for one node.
type Server struct {
	n      *node.Node
	log    *slog.Logger
	mux    *http.ServeMux
	submit http.Handler
	guard  *guard
}

// New returns the API handler for n. submit handles POST /v1/jobs (nil:
// job submission is not offered). It refuses requests as the zero Access
// says (loopback Hosts only, no browser origin, no token) until SetAccess
// says otherwise.
func New(n *node.Node, log *slog.Logger, submit http.Handler) *Server {
	s := &Server{n: n, log: log, mux: http.NewServeMux(), submit: submit}
	s.guard = newGuard(s.mux, Access{})
	s.mux.HandleFunc("GET /v1/node", s.handleNode)
	s.mux.HandleFunc("GET /v1/peers", s.handlePeers)
	s.mux.HandleFunc("GET /v1/find", s.handleFind)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(n.Metrics.Registry, promhttp.HandlerOpts{}))
	if submit != nil {
		s.mux.Handle("POST /v1/jobs", submit)
	}
	return s
}

// SetAccess sets who may use the API. Call it before serving.
func (s *Server) SetAccess(a Access) { s.guard = newGuard(s.mux, a) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.guard.ServeHTTP(w, r) }

// Listen binds addr, warning loudly when it is not loopback: the API
// submits jobs as this node and must not be open to the network unasked.
func Listen(addr string, log *slog.Logger) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: listening on %s: %w", addr, err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("THE LOCAL API IS BOUND TO A NON-LOOPBACK ADDRESS: anyone who can reach it can submit jobs as this node and read its state",
			"event", "api_exposed", "addr", l.Addr().String())
	}
	return l, nil
}

// Serve runs the API on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Health is GET /healthz: "ok", or "degraded" with what is wrong (a full
// or read-only data directory) while the node keeps serving from memory.
type Health struct {
	Status   string            `json:"status"`
	Problems []datadir.Problem `json:"problems,omitempty"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Problems: s.n.Problems()}
	if len(h.Problems) > 0 {
		h.Status = "degraded"
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	n := s.n
	info := NodeInfo{
		PeerID: n.ID.ID.String(), PublicKey: n.ID.PublicKeyHex(), Version: version.Version,
		Peers: len(n.Host.Network().Peers()), RoutingTableSize: n.DHT.RoutingTable().Size(),
		UptimeSeconds: n.Uptime().Seconds(), Record: n.Record(),
	}
	for _, a := range n.Addrs() {
		info.Addrs = append(info.Addrs, a.String())
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	h := s.n.Host
	inRT := map[string]bool{}
	for _, p := range s.n.DHT.RoutingTable().ListPeers() {
		inRT[p.String()] = true
	}
	out := []PeerInfo{}
	for _, id := range h.Network().Peers() {
		pi := PeerInfo{PeerID: id.String(), LatencyMS: float64(h.Peerstore().LatencyEWMA(id).Microseconds()) / 1000, InDHT: inRT[id.String()]}
		for _, c := range h.Network().ConnsToPeer(id) {
			pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr().String())
			if pi.Direction == "" {
				pi.Direction = map[network.Direction]string{network.DirInbound: "inbound", network.DirOutbound: "outbound"}[c.Stat().Direction]
			}
		}
		out = append(out, pi)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleFind(w http.ResponseWriter, r *http.Request) {
	req, limit, err := ParseRequirements(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	found, err := s.n.Lookup(ctx, req, limit) // a listing: nodes that joined a moment ago too
	if err != nil && !errors.Is(err, caps.ErrNoMatch) {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	out := []FoundInfo{}
	for _, f := range found {
		fi := FoundInfo{PeerID: f.Peer.ID.String(), Live: f.Live, Record: f.Record}
		for _, a := range f.Peer.Addrs {
			fi.Addrs = append(fi.Addrs, a.String())
		}
		out = append(out, fi)
	}
	writeJSON(w, http.StatusOK, out)
}

// ParseRequirements reads /v1/find's query parameters; an error names the
// parameter.
func ParseRequirements(q map[string][]string) (caps.Requirements, int, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	known := map[string]bool{"runtime": true, "abi": true, "arch": true, "require_arch": true, "min_memory_mb": true,
		"min_cores": true, "module_bytes": true, "timeout_seconds": true, "max_load": true, "limit": true}
	for k, v := range q {
		if !known[k] {
			return caps.Requirements{}, 0, fmt.Errorf("unknown query parameter %q", k)
		}
		if len(v) > 1 {
			return caps.Requirements{}, 0, fmt.Errorf("%s: given %d times, at most once allowed", k, len(v))
		}
	}
	req := caps.Requirements{Runtime: get("runtime"), ABI: get("abi"), Arch: get("arch")}
	if req.Arch != "" {
		a, err := phase.NormalizeArch(req.Arch)
		if err != nil {
			return req, 0, fmt.Errorf("arch: %w", err)
		}
		req.Arch = a
	}
	limit := 20
	ints := []struct {
		name string
		dst  *int
		hi   int
	}{{"min_memory_mb", &req.MinMemoryMB, 1 << 24}, {"min_cores", &req.MinCores, 4096},
		{"timeout_seconds", &req.TimeoutSeconds, 7 * 24 * 3600}, {"max_load", &req.MaxLoad, 1 << 20}, {"limit", &limit, 1000}}
	// A parameter given with an empty value is not absent: "limit=" is not
	// an integer (API-8).
	given := func(k string) bool { return len(q[k]) > 0 }
	for _, p := range ints {
		if !given(p.name) {
			continue
		}
		s := get(p.name)
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > p.hi {
			return req, 0, fmt.Errorf("%s: %q is not an integer in 0–%d", p.name, s, p.hi)
		}
		*p.dst = v
	}
	if s := get("module_bytes"); given("module_bytes") {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return req, 0, fmt.Errorf("module_bytes: %q is not a non-negative integer", s)
		}
		req.MaxModuleBytes = v
	}
	if s := get("require_arch"); given("require_arch") {
		// Exactly the spellings §3.4 lists, not strconv.ParseBool's "T" or
		// "FALSE".
		switch s {
		case "true", "1":
			req.RequireArch = true
		case "false", "0":
		default:
			return req, 0, fmt.Errorf("require_arch: %q is not true, false, 1 or 0", s)
		}
	}
	return req, limit, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// ErrorBody is every API error response.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, ErrorBody{Error: err.Error()})
}

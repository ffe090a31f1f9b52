// Package config is the plasmd configuration: its file format, shipped
// defaults and validation. Every field is honoured by the daemon; unknown
// fields are rejected so a typo never silently falls back to a default.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/multiformats/go-multiaddr"
)

// DefaultPort is the fixed default listen port, for TCP and QUIC alike.
const DefaultPort = 4747

// DefaultAPI is the local HTTP API's default address: loopback only.
const DefaultAPI = "127.0.0.1:4748"

// MaxBootstrap caps how many bootstrap addresses are taken.
const MaxBootstrap = 64

// Duration is a time.Duration written as a Go duration string ("90s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b) + ` (want a duration string like "30s")`, Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// An UnmarshalTypeError gets the field's path added by the decoder.
		return &json.UnmarshalTypeError{Value: strconv.Quote(s) + " (want a duration like \"30s\")", Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole daemon configuration. The comment on each field is
// its entry in the generated reference (docs/INSTALL.md, made by
// `go run ./internal/configdoc`).
type Config struct {
	DataDir   string    `json:"data_dir"`  // identity key (identity.key, 0600), compile cache (cache/wasm), saved peers (peers.json). Empty: $PLASMD_DATA_DIR, else ~/.plasmd; the package sets /var/lib/plasm
	Listen    []string  `json:"listen"`    // libp2p listen multiaddrs; 4747 is the fixed default port for TCP and QUIC. A port already in use is an error
	Bootstrap []string  `json:"bootstrap"` // multiaddrs ending in /p2p/<peer-id>; at most 64 peers are taken. With none, the node waits to be found
	API       string    `json:"api"`       // local HTTP API address; "" disables it. A non-loopback address logs a loud warning
	APIAccess APIAccess `json:"api_access"`
	Network   Network   `json:"network"`
	DHT       DHT       `json:"dht"`
	Caps      Caps      `json:"caps"`
	Jobs      Jobs      `json:"jobs"`
	Wasm      Wasm      `json:"wasm"`
	Log       Log       `json:"log"`
}

// APIAccess says who may use the local HTTP API (docs/spec-api.md §1.1).
type APIAccess struct {
	AllowedHosts   []string `json:"allowed_hosts"`   // Host names accepted besides loopback names, IP literals and the API's own address (DNS-rebinding guard); e.g. a name a reverse proxy uses
	AllowedOrigins []string `json:"allowed_origins"` // browser origins (scheme://host[:port]) allowed to call the API and read its answers; none by default, so every cross-origin browser request is refused
	TokenFile      string   `json:"token_file"`      // bearer token file (mode 0600, owned by the node's user); "" means <data_dir>/api.token when it exists (plasmd init --api-token creates it). With a token every endpoint except /healthz requires Authorization: Bearer <token>. A file named here must exist
}

// Network configures the libp2p host.
type Network struct {
	NATPortMap      bool     `json:"nat_port_map"`       // UPnP / NAT-PMP port mapping on the router
	RelayService    bool     `json:"relay_service"`      // serve as a circuit relay v2 for NATed peers
	StaticRelays    []string `json:"static_relays"`      // relays (with /p2p/) a NATed node reserves a slot on
	HolePunching    bool     `json:"hole_punching"`      // DCUtR hole punching
	Reachability    string   `json:"reachability"`       // auto (AutoNAT decides), public (a relay that must serve at once) or private (a node known to be behind NAT: reserve relay slots at once)
	ConnLow         int      `json:"conn_low"`           // connection manager low watermark
	ConnHigh        int      `json:"conn_high"`          // connection manager high watermark
	MaxMemoryMB     int      `json:"max_memory_mb"`      // memory the libp2p resource manager may use in all; one peer may use an eighth of it (at most 64 MiB), one connection 16 MiB
	MaxFDs          int      `json:"max_fds"`            // file descriptors the libp2p resource manager may use
	MaxConnsPerPeer int      `json:"max_conns_per_peer"` // connections one peer may hold. Job streams are capped by libp2p at jobs.max_uploads + 2 × jobs.max_concurrent (+32) node-wide and jobs.max_per_peer + 4 per peer
	TrustedNetworks []string `json:"trusted_networks"`   // CIDRs (e.g. 10.0.0.0/8) exempt, like loopback, from libp2p's per-IP connection limits (a burst of 16 new connections, then one every 5 s; 8 at once): for many clients behind one NAT or a test harness. Peer limits and the job limits still apply
}

// TrustedPrefixes parses network.trusted_networks.
func (n Network) TrustedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range n.TrustedNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("network.trusted_networks[%d]: %q is not a CIDR such as 10.0.0.0/8: %w", i, s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// DHT configures the Kademlia DHT.
type DHT struct {
	BucketSize int      `json:"bucket_size"`         // Kademlia k
	RetryMin   Duration `json:"bootstrap_retry_min"` // first retry (with jitter) after failing to reach any bootstrap peer
	RetryMax   Duration `json:"bootstrap_retry_max"` // backoff ceiling while no bootstrap peer answers
	SavedPeers int      `json:"saved_peers"`         // peers written to <data_dir>/peers.json (each with at most 8 addresses), the bound on that file
	ClientMode bool     `json:"client_mode"`         // a pure client: queries the DHT, publishes no record, accepts no jobs
}

// Caps configures the capability record.
type Caps struct {
	RepublishInterval Duration `json:"republish_interval"` // how often the capability record and provider records are republished
	TTL               Duration `json:"ttl"`                // lifetime of each signed record; must exceed republish_interval
	CPUCores          int      `json:"cpu_cores"`          // cores advertised; 0: the machine's
	MemoryMB          int      `json:"memory_mb"`          // memory advertised for jobs; 0: jobs.max_memory_mb × jobs.max_concurrent
}

// Jobs configures admission and execution limits. Streams that were
// accepted but are still sending their payload (uploads) hold no job slot;
// the max_uploads* and upload_* fields bound them instead.
type Jobs struct {
	MaxModuleBytes      int64    `json:"max_module_bytes"`    // largest module accepted (too_large beyond)
	MaxStdinBytes       int64    `json:"max_stdin_bytes"`     // largest stdin accepted
	MaxMemoryMB         int      `json:"max_memory_mb"`       // per-job memory; larger requests are clamped
	MaxTimeoutSeconds   int      `json:"max_timeout_seconds"` // per-job time limit; larger requests are clamped
	MaxConcurrent       int      `json:"max_concurrent"`      // jobs running at once; further offers wait in a queue of the same size, then get queue_full
	MaxPerPeer          int      `json:"max_per_peer"`        // jobs one peer may have in flight (queue_full beyond)
	StdoutCap           int      `json:"stdout_cap"`          // bytes of stdout kept per job; the rest is dropped and flagged
	StderrCap           int      `json:"stderr_cap"`          // bytes of stderr kept per job
	StepTimeout         Duration `json:"step_timeout"`        // deadline for each protocol step of a job stream
	Auth                Auth     `json:"auth"`
	ModuleStoreMB       int      `json:"module_store_mb"`        // modules kept by hash so clients need not resend them
	MaxUploads          int      `json:"max_uploads"`            // accepted streams still sending their payload, node-wide; when full, the longest-silent one (silent ≥ 2 s) is dropped for a new offer, else queue_full
	MaxUploadsPerPrefix int      `json:"max_uploads_per_prefix"` // the same, per client address prefix (IPv4 /24, IPv6 /48; all loopback is one prefix). Generous by default: a tighter cap stops one network's Sybil identities sooner but also refuses honest clients behind the same NAT or on the same host
	MaxJobsPerPrefix    int      `json:"max_jobs_per_prefix"`    // jobs queued or running from one address prefix (queue_full beyond); at most max_concurrent × 2 take effect (the queue holds max_concurrent more than run at once)
	UploadBufferMB      int      `json:"upload_buffer_mb"`       // memory for payload bytes received and not yet run, node-wide; when full, the longest-silent upload is dropped, else readers wait. At least (max_module_bytes + max_stdin_bytes) in MB
	UploadMinRateKiB    int      `json:"upload_min_rate_kib"`    // slowest payload upload accepted, in KiB/s: a stream has step_timeout plus (module_size + stdin_size) at this rate to deliver its payload
}

// Auth is the authorization policy for job offers.
type Auth struct {
	Mode  string   `json:"mode"`  // open, or allowlist (only jobs.auth.allow peers)
	Allow []string `json:"allow"` // peer IDs admitted in allowlist mode
	Deny  []string `json:"deny"`  // peer IDs always refused; deny wins over allow
}

// Wasm configures the executor's engines and compiled-code caches.
type Wasm struct {
	Tier           string `json:"tier"`            // auto (a new module runs on the interpreter while it compiles in the background; see node/wasm), interpreter, or compiler (compile, then run)
	CompileWorkers int    `json:"compile_workers"` // background compiles at once; 0: half the cores, at least 1
	MemoryCacheMB  int    `json:"memory_cache_mb"` // compiled code kept in memory (estimated), least recently used evicted; a quarter of it holds interpreter code under auto
	DiskCacheMB    int    `json:"disk_cache_mb"`   // compiled code kept on disk in data_dir/cache/wasm, least recently used evicted; the directory must be the node user's and not group/world-writable
}

// Log configures logging.
type Log struct {
	Level  string `json:"level"`  // debug, info, warn or error
	Format string `json:"format"` // json (one object per line, each with an "event" field) or text
}

// Default is the shipped configuration.
func Default() Config {
	return Config{
		Listen: []string{
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort),
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort),
			fmt.Sprintf("/ip6/::/udp/%d/quic-v1", DefaultPort),
			fmt.Sprintf("/ip6/::/tcp/%d", DefaultPort),
		},
		API: DefaultAPI,
		Network: Network{
			HolePunching: true, Reachability: "auto", ConnLow: 64, ConnHigh: 192,
			MaxMemoryMB: 512, MaxFDs: 1024, MaxConnsPerPeer: 8,
		},
		DHT:  DHT{BucketSize: 20, RetryMin: Duration(time.Second), RetryMax: Duration(time.Minute), SavedPeers: 64},
		Caps: Caps{RepublishInterval: Duration(10 * time.Minute), TTL: Duration(30 * time.Minute)},
		Jobs: Jobs{
			MaxModuleBytes: 64 << 20, MaxStdinBytes: 16 << 20,
			MaxMemoryMB: 512, MaxTimeoutSeconds: 300,
			MaxConcurrent: 8, MaxPerPeer: 4,
			StdoutCap: 1 << 20, StderrCap: 64 << 10,
			StepTimeout:   Duration(30 * time.Second),
			Auth:          Auth{Mode: "open"},
			ModuleStoreMB: 256,
			MaxUploads:    256, MaxUploadsPerPrefix: 128, MaxJobsPerPrefix: 12,
			UploadBufferMB: 256, UploadMinRateKiB: 64,
		},
		Wasm: Wasm{Tier: "auto", MemoryCacheMB: 256, DiskCacheMB: 1024},
		Log:  Log{Level: "info", Format: "json"},
	}
}

// Load reads a config file over the defaults: fields the file leaves out
// keep their default; unknown fields are an error.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a config document over the defaults and validates it.
func Parse(b []byte) (Config, error) {
	c := Default()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decoding: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("decoding: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Range is the allowed range of one integer field. MinOf or MaxOf names
// the field that sets a bound, when another field does.
type Range struct {
	Field           string
	Value, Min, Max int64
	MinOf, MaxOf    string
}

// Ranges lists the integer fields' allowed ranges for c (some bounds
// follow other fields), as Validate checks them.
func (c Config) Ranges() []Range {
	return []Range{
		{Field: "network.conn_low", Value: int64(c.Network.ConnLow), Min: 1, Max: 100000},
		{Field: "network.conn_high", Value: int64(c.Network.ConnHigh), Min: int64(max(c.Network.ConnLow, 1)), Max: 100000, MinOf: "network.conn_low"},
		{Field: "network.max_memory_mb", Value: int64(c.Network.MaxMemoryMB), Min: 16, Max: 1 << 20},
		{Field: "network.max_fds", Value: int64(c.Network.MaxFDs), Min: 16, Max: 1 << 20},
		{Field: "network.max_conns_per_peer", Value: int64(c.Network.MaxConnsPerPeer), Min: 1, Max: 1024},
		{Field: "dht.bucket_size", Value: int64(c.DHT.BucketSize), Min: 2, Max: 100},
		{Field: "dht.saved_peers", Value: int64(c.DHT.SavedPeers), Min: 0, Max: 1024},
		{Field: "caps.cpu_cores", Value: int64(c.Caps.CPUCores), Min: 0, Max: 4096},
		{Field: "caps.memory_mb", Value: int64(c.Caps.MemoryMB), Min: 0, Max: 1 << 30},
		{Field: "jobs.max_module_bytes", Value: c.Jobs.MaxModuleBytes, Min: 1024, Max: 1 << 30},
		{Field: "jobs.max_stdin_bytes", Value: c.Jobs.MaxStdinBytes, Min: 0, Max: 1 << 30},
		{Field: "jobs.max_memory_mb", Value: int64(c.Jobs.MaxMemoryMB), Min: 1, Max: 32768},
		{Field: "jobs.max_timeout_seconds", Value: int64(c.Jobs.MaxTimeoutSeconds), Min: 1, Max: 3600},
		{Field: "jobs.max_concurrent", Value: int64(c.Jobs.MaxConcurrent), Min: 1, Max: 4096},
		{Field: "jobs.max_per_peer", Value: int64(c.Jobs.MaxPerPeer), Min: 1, Max: int64(max(c.Jobs.MaxConcurrent, 1)), MaxOf: "jobs.max_concurrent"},
		{Field: "jobs.stdout_cap", Value: int64(c.Jobs.StdoutCap), Min: 0, Max: 256 << 20},
		{Field: "jobs.stderr_cap", Value: int64(c.Jobs.StderrCap), Min: 0, Max: 256 << 20},
		{Field: "jobs.module_store_mb", Value: int64(c.Jobs.ModuleStoreMB), Min: 0, Max: 1 << 20},
		{Field: "jobs.max_uploads", Value: int64(c.Jobs.MaxUploads), Min: 1, Max: 1 << 16},
		{Field: "jobs.max_uploads_per_prefix", Value: int64(c.Jobs.MaxUploadsPerPrefix), Min: 1, Max: int64(max(c.Jobs.MaxUploads, 1)), MaxOf: "jobs.max_uploads"},
		{Field: "jobs.max_jobs_per_prefix", Value: int64(c.Jobs.MaxJobsPerPrefix), Min: 1, Max: 1 << 16},
		{Field: "jobs.upload_buffer_mb", Value: int64(c.Jobs.UploadBufferMB), Min: (c.Jobs.MaxModuleBytes + c.Jobs.MaxStdinBytes + (1 << 20) - 1) >> 20, Max: 1 << 20, MinOf: "jobs.max_module_bytes + jobs.max_stdin_bytes"},
		{Field: "jobs.upload_min_rate_kib", Value: int64(c.Jobs.UploadMinRateKiB), Min: 1, Max: 1 << 20},
		{Field: "wasm.compile_workers", Value: int64(c.Wasm.CompileWorkers), Min: 0, Max: 256},
		{Field: "wasm.memory_cache_mb", Value: int64(c.Wasm.MemoryCacheMB), Min: 16, Max: 1 << 20},
		{Field: "wasm.disk_cache_mb", Value: int64(c.Wasm.DiskCacheMB), Min: 16, Max: 1 << 24},
	}
}

// Validate reports every bad value, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	for i, a := range c.Listen {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			bad(fmt.Sprintf("listen[%d]", i), "%q is not a multiaddr: %v", a, err)
		}
	}
	if _, err := ParseBootstrap(c.Bootstrap); err != nil {
		bad("bootstrap", "%v", err)
	}
	for i, a := range c.Network.StaticRelays {
		if _, err := ParseBootstrap([]string{a}); err != nil {
			bad(fmt.Sprintf("network.static_relays[%d]", i), "%v", err)
		}
	}
	if _, err := c.Network.TrustedPrefixes(); err != nil {
		errs = append(errs, err)
	}
	ranges := c.Ranges()
	for _, r := range ranges {
		if r.Value < r.Min || r.Value > r.Max {
			bad(r.Field, "%d out of range %d–%d", r.Value, r.Min, r.Max)
		}
	}
	if c.DHT.RetryMin.D() <= 0 || c.DHT.RetryMax.D() < c.DHT.RetryMin.D() {
		bad("dht.bootstrap_retry_min/max", "want 0 < min ≤ max, got %v and %v", c.DHT.RetryMin.D(), c.DHT.RetryMax.D())
	}
	if c.Caps.RepublishInterval.D() < time.Second {
		bad("caps.republish_interval", "%v is under 1s", c.Caps.RepublishInterval.D())
	}
	if c.Caps.TTL.D() <= c.Caps.RepublishInterval.D() {
		bad("caps.ttl", "%v must exceed caps.republish_interval %v", c.Caps.TTL.D(), c.Caps.RepublishInterval.D())
	}
	if c.Jobs.StepTimeout.D() < 100*time.Millisecond {
		bad("jobs.step_timeout", "%v is under 100ms", c.Jobs.StepTimeout.D())
	}
	switch c.Jobs.Auth.Mode {
	case "open", "allowlist":
	default:
		bad("jobs.auth.mode", "%q is not one of open, allowlist", c.Jobs.Auth.Mode)
	}
	for _, list := range []struct {
		field string
		ids   []string
	}{{"jobs.auth.allow", c.Jobs.Auth.Allow}, {"jobs.auth.deny", c.Jobs.Auth.Deny}} {
		for i, s := range list.ids {
			if _, err := peerID(s); err != nil {
				bad(fmt.Sprintf("%s[%d]", list.field, i), "%q is not a peer ID: %v", s, err)
			}
		}
	}
	for i, o := range c.APIAccess.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			bad(fmt.Sprintf("api_access.allowed_origins[%d]", i), "%q: %v", o, err)
		}
	}
	for i, h := range c.APIAccess.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			bad(fmt.Sprintf("api_access.allowed_hosts[%d]", i), "%q is not a host name (no port, scheme or path)", h)
		}
	}
	switch c.Wasm.Tier {
	case "auto", "interpreter", "compiler":
	default:
		bad("wasm.tier", "%q is not one of auto, interpreter, compiler", c.Wasm.Tier)
	}
	switch c.Network.Reachability {
	case "auto", "public", "private":
	default:
		bad("network.reachability", "%q is not one of auto, public, private", c.Network.Reachability)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q is not one of json, text", c.Log.Format)
	}
	return errors.Join(errs...)
}

// checkOrigin accepts a browser origin as browsers send it:
// scheme://host[:port], nothing else.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("want scheme://host[:port] with scheme http or https and no path")
	}
	if o != strings.ToLower(o) {
		return errors.New("browsers send origins in lower case")
	}
	return nil
}

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
	"os"
	"reflect"
	"strconv"
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

// Config is the whole daemon configuration.
type Config struct {
	DataDir   string   `json:"data_dir"`  // identity, compile cache, saved peers, module store
	Listen    []string `json:"listen"`    // multiaddrs to listen on
	Bootstrap []string `json:"bootstrap"` // multiaddrs with /p2p/<peer-id>; at most 64 taken
	API       string   `json:"api"`       // local HTTP API address; "" disables it
	Network   Network  `json:"network"`
	DHT       DHT      `json:"dht"`
	Caps      Caps     `json:"caps"`
	Jobs      Jobs     `json:"jobs"`
	Log       Log      `json:"log"`
}

// Network configures the libp2p host.
type Network struct {
	NATPortMap      bool     `json:"nat_port_map"`       // UPnP/NAT-PMP port mapping; off by default
	RelayService    bool     `json:"relay_service"`      // serve as a circuit relay v2 for others
	StaticRelays    []string `json:"static_relays"`      // relays a NATed node reserves a slot on
	HolePunching    bool     `json:"hole_punching"`      // DCUtR
	ConnLow         int      `json:"conn_low"`           // connection manager low watermark
	ConnHigh        int      `json:"conn_high"`          // and high watermark
	MaxMemoryMB     int      `json:"max_memory_mb"`      // resource manager: memory for libp2p itself
	MaxFDs          int      `json:"max_fds"`            // resource manager: file descriptors
	MaxConnsPerPeer int      `json:"max_conns_per_peer"` // resource manager: per-peer connections
}

// DHT configures the Kademlia DHT.
type DHT struct {
	BucketSize int      `json:"bucket_size"`
	RetryMin   Duration `json:"bootstrap_retry_min"` // first retry after failing to reach any bootstrap peer
	RetryMax   Duration `json:"bootstrap_retry_max"` // backoff ceiling
	ClientMode bool     `json:"client_mode"`         // a pure client does not serve the DHT
}

// Caps configures the capability record.
type Caps struct {
	RepublishInterval Duration `json:"republish_interval"`
	TTL               Duration `json:"ttl"`       // record lifetime; must exceed the republish interval
	CPUCores          int      `json:"cpu_cores"` // 0: the machine's
	MemoryMB          int      `json:"memory_mb"` // memory offered to jobs; 0: jobs.max_memory_mb × max_concurrent
}

// Jobs configures admission and execution limits.
type Jobs struct {
	MaxModuleBytes    int64    `json:"max_module_bytes"`
	MaxStdinBytes     int64    `json:"max_stdin_bytes"`
	MaxMemoryMB       int      `json:"max_memory_mb"`
	MaxTimeoutSeconds int      `json:"max_timeout_seconds"`
	MaxConcurrent     int      `json:"max_concurrent"`
	MaxPerPeer        int      `json:"max_per_peer"`
	StdoutCap         int      `json:"stdout_cap"`
	StderrCap         int      `json:"stderr_cap"`
	StepTimeout       Duration `json:"step_timeout"` // deadline for each protocol step
	Auth              Auth     `json:"auth"`
	ModuleStoreMB     int      `json:"module_store_mb"` // modules kept by hash so they need not be resent
}

// Auth is the authorization policy for job offers.
type Auth struct {
	Mode  string   `json:"mode"`  // "open" or "allowlist"
	Allow []string `json:"allow"` // peer IDs admitted in allowlist mode
	Deny  []string `json:"deny"`  // peer IDs always refused
}

// Log configures logging.
type Log struct {
	Level  string `json:"level"`  // debug, info, warn, error
	Format string `json:"format"` // json or text
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
			HolePunching: true, ConnLow: 64, ConnHigh: 192,
			MaxMemoryMB: 512, MaxFDs: 1024, MaxConnsPerPeer: 8,
		},
		DHT:  DHT{BucketSize: 20, RetryMin: Duration(time.Second), RetryMax: Duration(time.Minute)},
		Caps: Caps{RepublishInterval: Duration(10 * time.Minute), TTL: Duration(30 * time.Minute)},
		Jobs: Jobs{
			MaxModuleBytes: 64 << 20, MaxStdinBytes: 16 << 20,
			MaxMemoryMB: 512, MaxTimeoutSeconds: 300,
			MaxConcurrent: 8, MaxPerPeer: 4,
			StdoutCap: 1 << 20, StderrCap: 64 << 10,
			StepTimeout:   Duration(30 * time.Second),
			Auth:          Auth{Mode: "open"},
			ModuleStoreMB: 256,
		},
		Log: Log{Level: "info", Format: "json"},
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
	ranges := []struct {
		field     string
		v, lo, hi int64
	}{
		{"network.conn_low", int64(c.Network.ConnLow), 1, 100000},
		{"network.conn_high", int64(c.Network.ConnHigh), int64(max(c.Network.ConnLow, 1)), 100000},
		{"network.max_memory_mb", int64(c.Network.MaxMemoryMB), 16, 1 << 20},
		{"network.max_fds", int64(c.Network.MaxFDs), 16, 1 << 20},
		{"network.max_conns_per_peer", int64(c.Network.MaxConnsPerPeer), 1, 1024},
		{"dht.bucket_size", int64(c.DHT.BucketSize), 2, 100},
		{"caps.cpu_cores", int64(c.Caps.CPUCores), 0, 4096},
		{"caps.memory_mb", int64(c.Caps.MemoryMB), 0, 1 << 30},
		{"jobs.max_module_bytes", c.Jobs.MaxModuleBytes, 1024, 1 << 30},
		{"jobs.max_stdin_bytes", c.Jobs.MaxStdinBytes, 0, 1 << 30},
		{"jobs.max_memory_mb", int64(c.Jobs.MaxMemoryMB), 1, 32768},
		{"jobs.max_timeout_seconds", int64(c.Jobs.MaxTimeoutSeconds), 1, 3600},
		{"jobs.max_concurrent", int64(c.Jobs.MaxConcurrent), 1, 4096},
		{"jobs.max_per_peer", int64(c.Jobs.MaxPerPeer), 1, int64(max(c.Jobs.MaxConcurrent, 1))},
		{"jobs.stdout_cap", int64(c.Jobs.StdoutCap), 0, 256 << 20},
		{"jobs.stderr_cap", int64(c.Jobs.StderrCap), 0, 256 << 20},
		{"jobs.module_store_mb", int64(c.Jobs.ModuleStoreMB), 0, 1 << 20},
	}
	for _, r := range ranges {
		if r.v < r.lo || r.v > r.hi {
			bad(r.field, "%d out of range %d–%d", r.v, r.lo, r.hi)
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

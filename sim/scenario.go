package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/scripted"
	"go.yaml.in/yaml/v3"
)

// Time modes of a run.
const (
	TimeVirtual = "virtual" // testing/synctest: the clock moves only when every goroutine waits
	TimeReal    = "real"    // the machine's clock
)

// Fault kinds.
const (
	FaultCrash     = "crash"     // nodes stop abruptly; restart after Duration (0: never)
	FaultPartition = "partition" // the network splits; heals after Duration (0: never)
	FaultChurn     = "churn"     // nodes leave and fresh nodes join at Rate per second for Duration
	FaultSlow      = "slow"      // nodes' links get Factor times slower for Duration (0: to the end)
	FaultLoss      = "loss"      // every packet is lost with probability Loss for Duration (0: to the end)
)

// DefaultBehaviours are the misbehaviours a scenario deals out when it names
// none: every independent one of node/scripted. Colluding liars
// (scripted.ColludingOutput) act together and are asked for by name.
func DefaultBehaviours() []string {
	return slices.DeleteFunc(scripted.Behaviours(), func(b string) bool { return b == scripted.ColludingOutput })
}

// Modules a workload can use: examples/hello, the edge-case modules and
// echo (which prints its arguments: with random words, the built-in
// stand-in for hello).
var knownModules = []string{"hello", "echo", "tiny", "exit7", "trap", "grow", "bigmem", "loop", "flood"}

// spinning modules never block, so virtual time cannot reach their deadline.
var spinning = []string{"loop", "flood"}

// Scenario is one documented experiment: the network, the nodes, the
// workload, the faults and the misbehaving nodes. Scenario files are YAML
// with exactly these fields (unknown fields are an error).
type Scenario struct {
	Name        string      `yaml:"name" json:"name"`
	Description string      `yaml:"description" json:"description"`
	Seed        uint64      `yaml:"seed" json:"seed"`
	Time        string      `yaml:"time" json:"time"`
	Nodes       int         `yaml:"nodes" json:"nodes"`
	Clients     int         `yaml:"clients" json:"clients"`
	Network     NetworkSpec `yaml:"network" json:"network"`
	Node        NodeSpec    `yaml:"node" json:"node"`
	Workload    Workload    `yaml:"workload" json:"workload"`
	Faults      []Fault     `yaml:"faults" json:"faults"`
	Misbehaving Misbehaving `yaml:"misbehaving" json:"misbehaving"`
	// ConvergeTimeout bounds the wait (simulated time) for every node to
	// join and publish its record before the workload starts anyway.
	ConvergeTimeout Duration `yaml:"converge_timeout" json:"converge_timeout"`
	// MemoryLimitMB is the Go memory limit plasmsim sets for the run
	// (unless GOMEMLIMIT is set); 0: 70 % of the machine's memory. The
	// collector runs at GOGC=400 until the heap nears it, so a scale run's
	// peak RSS is mostly the collector's headroom, and this bounds it at
	// the price of more frequent collections (docs/SIMULATOR.md).
	MemoryLimitMB int `yaml:"memory_limit_mb" json:"memory_limit_mb,omitempty"`
}

// NetworkSpec is the link model and how nodes join.
type NetworkSpec struct {
	Latency       Duration `yaml:"latency" json:"latency"`               // one-way delay between two nodes, on average
	LatencySpread float64  `yaml:"latency_spread" json:"latency_spread"` // each node's share drawn from [1-s, 1+s] of the mean
	Jitter        Duration `yaml:"jitter" json:"jitter"`                 // extra random delay per packet, up to this
	// Tick puts every packet's arrival on a multiple of this much time
	// (0: exact). In virtual time the nodes a packet wakes then run side by
	// side in one step instead of one instant each: at 300 nodes a 1 ms
	// tick cut a run's wall time by a third to a half (docs/SIMULATOR.md).
	Tick             Duration  `yaml:"tick" json:"tick"`
	Bandwidth        Bandwidth `yaml:"bandwidth" json:"bandwidth"` // each node's access link, both ways
	Loss             float64   `yaml:"loss" json:"loss"`           // packet loss probability for the whole run
	BootstrapNodes   int       `yaml:"bootstrap_nodes" json:"bootstrap_nodes"`
	BootstrapPerNode int       `yaml:"bootstrap_per_node" json:"bootstrap_per_node"`
	WaveSize         int       `yaml:"wave_size" json:"wave_size"`         // nodes started together
	WaveInterval     Duration  `yaml:"wave_interval" json:"wave_interval"` // a wave's nodes start spread over this, then the next wave
	// HubMemoryMB is the libp2p memory (node/config network.max_memory_mb,
	// which scales the resource manager's connection limits) of bootstrap
	// nodes and clients: they hold far more connections than other nodes.
	// The daemon's default of 512 MB admits about 96 inbound connections.
	HubMemoryMB int `yaml:"hub_memory_mb" json:"hub_memory_mb"`
	// HubConnLow and HubConnHigh are the connection manager's watermarks
	// on bootstrap nodes and clients; a client talks to every candidate
	// its lookups return.
	HubConnLow  int `yaml:"hub_conn_low" json:"hub_conn_low"`
	HubConnHigh int `yaml:"hub_conn_high" json:"hub_conn_high"`
}

// NodeSpec is the configuration every honest node runs with (node/config
// fields of the same names).
type NodeSpec struct {
	ConnLow           int      `yaml:"conn_low" json:"conn_low"`
	ConnHigh          int      `yaml:"conn_high" json:"conn_high"`
	BucketSize        int      `yaml:"bucket_size" json:"bucket_size"`
	MaxConcurrent     int      `yaml:"max_concurrent" json:"max_concurrent"`
	MaxPerPeer        int      `yaml:"max_per_peer" json:"max_per_peer"`
	MaxMemoryMB       int      `yaml:"max_memory_mb" json:"max_memory_mb"`
	MaxTimeoutSeconds int      `yaml:"max_timeout_seconds" json:"max_timeout_seconds"`
	RepublishInterval Duration `yaml:"republish_interval" json:"republish_interval"`
	// MemoryMB is node/config network.max_memory_mb: libp2p's own memory,
	// which also scales its connection limits.
	MemoryMB int `yaml:"libp2p_memory_mb" json:"libp2p_memory_mb"`
	// AutoRefresh keeps kad-dht's periodic routing-table refresh on (the
	// daemon's setting). Off, a node refreshes once, when it bootstraps:
	// several times less DHT traffic while a large network boots.
	AutoRefresh bool `yaml:"auto_refresh" json:"auto_refresh"`
	// RefreshAtJoin keeps kad-dht's full routing-table refresh when a node
	// joins: a lookup per bucket (about ten). Off, a joining node looks up
	// only its own ID, the classic Kademlia join, and its buckets fill from
	// later traffic.
	RefreshAtJoin bool `yaml:"refresh_at_join" json:"refresh_at_join"`
	// DHTConcurrency is kad-dht's alpha: requests a lookup keeps in flight
	// (kad-dht's default is 10).
	DHTConcurrency int `yaml:"dht_concurrency" json:"dht_concurrency"`
	// ConnGrace is how long the connection manager leaves a new connection
	// alone before it may trim it (0: the daemon's 30 s). Shorter, the
	// dozens of connections a node opens while it joins are trimmed to
	// conn_low while the network is still booting, instead of all staying
	// open (each costs goroutines, memory and QUIC timer work).
	ConnGrace Duration `yaml:"conn_grace,omitempty" json:"conn_grace,omitempty"`
}

// Workload is the jobs the clients submit.
type Workload struct {
	Jobs           int      `yaml:"jobs" json:"jobs"`
	Duration       Duration `yaml:"duration" json:"duration"` // jobs arrive at random over this window
	Replicas       int      `yaml:"replicas" json:"replicas"`
	MemoryMB       int      `yaml:"memory_mb" json:"memory_mb"`
	TimeoutSeconds int      `yaml:"timeout_seconds" json:"timeout_seconds"`
	Fanout         int      `yaml:"fanout" json:"fanout"`
	OfferStagger   Duration `yaml:"offer_stagger,omitempty" json:"offer_stagger,omitempty"` // 0: the client's default; negative: a round's offers at once
	Attempts       int      `yaml:"attempts" json:"attempts"`
	AcceptTimeout  Duration `yaml:"accept_timeout" json:"accept_timeout"`
	AttemptTimeout Duration `yaml:"attempt_timeout" json:"attempt_timeout"`
	Deadline       Duration `yaml:"deadline" json:"deadline"`
	Mix            []Module `yaml:"mix" json:"mix"`
}

// Module is one kind of job in the mix.
type Module struct {
	Module string   `yaml:"module" json:"module"`
	Weight int      `yaml:"weight" json:"weight"`
	Args   []string `yaml:"args,omitempty" json:"args,omitempty"` // fixed args; none given: random words for hello and echo
	Stdin  string   `yaml:"stdin,omitempty" json:"stdin,omitempty"`
}

// Fault is one entry of the fault schedule. At is measured from the start
// of the workload.
type Fault struct {
	Kind     string   `yaml:"kind" json:"kind"`
	At       Duration `yaml:"at" json:"at"`
	Duration Duration `yaml:"duration" json:"duration"`
	Fraction float64  `yaml:"fraction" json:"fraction,omitempty"`     // share of server nodes affected
	Count    int      `yaml:"count" json:"count,omitempty"`           // or a number of nodes
	Nodes    []int    `yaml:"nodes,omitempty" json:"nodes,omitempty"` // or these server slots (crash, partition, slow)
	Rate     float64  `yaml:"rate" json:"rate,omitempty"`             // churn: departures (and as many arrivals) per second
	Factor   float64  `yaml:"factor" json:"factor,omitempty"`         // slow: latency multiplier
	Loss     float64  `yaml:"loss" json:"loss,omitempty"`             // loss: drop probability
}

// Misbehaving says which server nodes lie, and how.
type Misbehaving struct {
	Fraction   float64  `yaml:"fraction" json:"fraction"`
	Behaviours []string `yaml:"behaviours" json:"behaviours"` // dealt out in turn; empty: all of them
	// LatencyFactor scales the liars' access latency: below 1 they sit
	// closer to everyone and win the race to accept an offer.
	LatencyFactor float64 `yaml:"latency_factor" json:"latency_factor"`
}

// Default is a scenario with every field set to its default: a small
// fault-free run, with the thrifty DHT settings that let the same
// defaults scale to a thousand nodes (bucket size 10, alpha 3, no bucket
// refresh at join or on a timer; see docs/SIMULATOR.md). A scenario can
// ask for the daemon's own settings instead: bucket_size 20,
// dht_concurrency 10, auto_refresh and refresh_at_join true.
func Default() Scenario {
	return Scenario{
		Name: "default", Seed: 1, Time: TimeVirtual, Nodes: 20, Clients: 4,
		Network: NetworkSpec{
			Latency: Duration(25 * time.Millisecond), LatencySpread: 0.5, Jitter: Duration(time.Millisecond), Tick: Duration(time.Millisecond),
			Bandwidth: 20_000_000, BootstrapNodes: 10, BootstrapPerNode: 2,
			WaveSize: 100, WaveInterval: Duration(3 * time.Second), HubMemoryMB: 8192,
			HubConnLow: 1100, HubConnHigh: 1500,
		},
		Node: NodeSpec{
			ConnLow: 16, ConnHigh: 48, BucketSize: 10, MaxConcurrent: 8, MaxPerPeer: 4,
			MaxMemoryMB: 256, MaxTimeoutSeconds: 60, RepublishInterval: Duration(10 * time.Minute),
			MemoryMB: 512, AutoRefresh: false, RefreshAtJoin: false, DHTConcurrency: 3,
		},
		Workload: Workload{
			// Jobs arrive over two minutes. The mix is built into plasmsim
			// (no checkout needed); scenarios/sim/*.yaml use examples/hello,
			// whose 2.3 MB a client's 20 Mbps link carries about once a second.
			Jobs: 50, Duration: Duration(2 * time.Minute), Replicas: 1, MemoryMB: 64, TimeoutSeconds: 10,
			Fanout: client.DefaultFanout, AcceptTimeout: Duration(2 * time.Second), AttemptTimeout: Duration(20 * time.Second),
			Deadline: Duration(2 * time.Minute),
			Mix:      []Module{{Module: "echo", Weight: 1}, {Module: "tiny", Weight: 1}},
		},
		Misbehaving:     Misbehaving{LatencyFactor: 1},
		ConvergeTimeout: Duration(5 * time.Minute),
	}
}

// Load reads a scenario file over the defaults.
func Load(path string) (Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("reading scenario: %w", err)
	}
	sc, err := Parse(b)
	if err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", path, err)
	}
	return sc, nil
}

// Parse decodes a YAML scenario over the defaults and validates it.
// Fields the document leaves out keep their default; unknown fields, a
// second document and bad values are errors naming the field.
func Parse(b []byte) (Scenario, error) {
	sc := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil && !errors.Is(err, io.EOF) {
		return Scenario{}, fmt.Errorf("decoding: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Scenario{}, errors.New("decoding: more than one YAML document")
	}
	if err := sc.Validate(); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}

// Validate reports every bad field.
func (sc Scenario) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if sc.Time != TimeVirtual && sc.Time != TimeReal {
		bad("time", "%q is not one of %s, %s", sc.Time, TimeVirtual, TimeReal)
	}
	ints := []struct {
		field     string
		v, lo, hi int
	}{
		{"nodes", sc.Nodes, 1, 100000},
		{"clients", sc.Clients, 1, 1000},
		{"network.bootstrap_nodes", sc.Network.BootstrapNodes, 1, 10000}, // a network smaller than this uses all its nodes
		{"network.bootstrap_per_node", sc.Network.BootstrapPerNode, 1, 64},
		{"network.wave_size", sc.Network.WaveSize, 1, 100000},
		{"node.conn_low", sc.Node.ConnLow, 1, 100000},
		{"node.conn_grace (ms)", int(time.Duration(sc.Node.ConnGrace).Milliseconds()), 0, 3_600_000},
		{"node.conn_high", sc.Node.ConnHigh, max(sc.Node.ConnLow, 1), 100000},
		{"node.bucket_size", sc.Node.BucketSize, 2, 100},
		{"node.dht_concurrency", sc.Node.DHTConcurrency, 1, 64},
		{"node.libp2p_memory_mb", sc.Node.MemoryMB, 16, 1 << 20},
		{"network.hub_memory_mb", sc.Network.HubMemoryMB, 16, 1 << 20},
		{"network.hub_conn_low", sc.Network.HubConnLow, 1, 100000},
		{"network.hub_conn_high", sc.Network.HubConnHigh, max(sc.Network.HubConnLow, 1), 100000},
		{"node.max_concurrent", sc.Node.MaxConcurrent, 1, 4096},
		{"node.max_per_peer", sc.Node.MaxPerPeer, 1, max(sc.Node.MaxConcurrent, 1)},
		{"node.max_memory_mb", sc.Node.MaxMemoryMB, 1, 32768},
		{"node.max_timeout_seconds", sc.Node.MaxTimeoutSeconds, 1, 3600},
		{"workload.jobs", sc.Workload.Jobs, 0, 10_000_000},
		{"workload.replicas", sc.Workload.Replicas, 1, 16},
		{"workload.memory_mb", sc.Workload.MemoryMB, 1, 32768},
		{"workload.timeout_seconds", sc.Workload.TimeoutSeconds, 1, 3600},
		{"workload.fanout", sc.Workload.Fanout, 1, 64},
		{"workload.attempts", sc.Workload.Attempts, 0, 1000},
	}
	for _, r := range ints {
		if r.v < r.lo || r.v > r.hi {
			bad(r.field, "%d out of range %d–%d", r.v, r.lo, r.hi)
		}
	}
	if sc.Workload.Attempts > 0 && sc.Workload.Attempts < sc.Workload.Replicas {
		bad("workload.attempts", "%d is less than workload.replicas %d", sc.Workload.Attempts, sc.Workload.Replicas)
	}
	for _, f := range []struct {
		field string
		v     float64
		hi    float64
	}{
		{"network.latency_spread", sc.Network.LatencySpread, 1},
		{"network.loss", sc.Network.Loss, 0.5},
		{"misbehaving.fraction", sc.Misbehaving.Fraction, 1},
	} {
		if f.v < 0 || f.v > f.hi || f.v != f.v {
			bad(f.field, "%v out of range 0–%v", f.v, f.hi)
		}
	}
	if lf := sc.Misbehaving.LatencyFactor; lf <= 0 || lf > 100 {
		bad("misbehaving.latency_factor", "%v out of range (0, 100]", lf)
	}
	for _, d := range []struct {
		field string
		v     Duration
		min   time.Duration
	}{
		{"network.latency", sc.Network.Latency, 0},
		{"network.jitter", sc.Network.Jitter, 0},
		{"network.tick", sc.Network.Tick, 0},
		{"network.wave_interval", sc.Network.WaveInterval, 0},
		{"workload.duration", sc.Workload.Duration, 0},
		{"workload.accept_timeout", sc.Workload.AcceptTimeout, time.Millisecond},
		{"workload.attempt_timeout", sc.Workload.AttemptTimeout, time.Millisecond},
		{"workload.deadline", sc.Workload.Deadline, time.Millisecond},
		{"node.republish_interval", sc.Node.RepublishInterval, time.Second},
		{"converge_timeout", sc.ConvergeTimeout, time.Second},
	} {
		if d.v.D() < d.min {
			bad(d.field, "%v is under %v", d.v, d.min)
		}
	}
	if sc.MemoryLimitMB < 0 {
		bad("memory_limit_mb", "%d is negative", sc.MemoryLimitMB)
	}
	if sc.Network.Bandwidth < 10_000 {
		bad("network.bandwidth", "%v is under 10kbps", sc.Network.Bandwidth)
	}
	if len(sc.Workload.Mix) == 0 && sc.Workload.Jobs > 0 {
		bad("workload.mix", "no modules to run")
	}
	for i, m := range sc.Workload.Mix {
		field := fmt.Sprintf("workload.mix[%d]", i)
		if !slices.Contains(knownModules, m.Module) {
			bad(field+".module", "%q is not one of %s", m.Module, strings.Join(knownModules, ", "))
		}
		if sc.Time == TimeVirtual && slices.Contains(spinning, m.Module) {
			bad(field+".module", "%q never blocks, so in virtual time its deadline never comes; use time: real", m.Module)
		}
		if m.Weight < 1 || m.Weight > 1000 {
			bad(field+".weight", "%d out of range 1–1000", m.Weight)
		}
		if len(m.Args) > 64 {
			bad(field+".args", "%d args, at most 64", len(m.Args))
		}
	}
	for i, f := range sc.Faults {
		field := fmt.Sprintf("faults[%d]", i)
		if f.At.D() < 0 || f.Duration.D() < 0 {
			bad(field, "at and duration must not be negative")
		}
		if f.Fraction < 0 || f.Fraction > 1 {
			bad(field+".fraction", "%v out of range 0–1", f.Fraction)
		}
		if f.Count < 0 || f.Count > sc.Nodes {
			bad(field+".count", "%d out of range 0–%d (nodes)", f.Count, sc.Nodes)
		}
		for _, n := range f.Nodes {
			if n < 0 || n >= sc.Nodes {
				bad(field+".nodes", "slot %d is not a server (0–%d)", n, sc.Nodes-1)
			}
		}
		if len(f.Nodes) > 0 && f.Kind != FaultCrash && f.Kind != FaultPartition && f.Kind != FaultSlow {
			bad(field+".nodes", "only crash, partition and slow faults take a node list")
		}
		switch f.Kind {
		case FaultCrash, FaultSlow:
			if f.Fraction == 0 && f.Count == 0 && len(f.Nodes) == 0 {
				bad(field, "%s needs fraction or count", f.Kind)
			}
			if f.Kind == FaultSlow && (f.Factor <= 1 || f.Factor > 1000) {
				bad(field+".factor", "%v out of range (1, 1000]", f.Factor)
			}
		case FaultPartition:
			if len(f.Nodes) == 0 && (f.Fraction <= 0 || f.Fraction >= 1) {
				bad(field+".fraction", "a partition cuts off a share of the nodes in (0, 1), got %v", f.Fraction)
			}
		case FaultChurn:
			if f.Rate <= 0 || f.Rate > 1000 {
				bad(field+".rate", "%v out of range (0, 1000] per second", f.Rate)
			}
			if f.Duration.D() <= 0 {
				bad(field+".duration", "churn needs a window")
			}
		case FaultLoss:
			if f.Loss <= 0 || f.Loss > 0.5 {
				bad(field+".loss", "%v out of range (0, 0.5]", f.Loss)
			}
		default:
			bad(field+".kind", "%q is not one of %s", f.Kind, strings.Join([]string{FaultCrash, FaultPartition, FaultChurn, FaultSlow, FaultLoss}, ", "))
		}
	}
	for i, b := range sc.Misbehaving.Behaviours {
		if !slices.Contains(scripted.Behaviours(), b) {
			bad(fmt.Sprintf("misbehaving.behaviours[%d]", i), "%q is not one of %s", b, strings.Join(scripted.Behaviours(), ", "))
		}
	}
	return errors.Join(errs...)
}

// YAML returns the scenario as a YAML document that Parse reads back to
// the same scenario.
func (sc Scenario) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(sc); err != nil {
		return nil, fmt.Errorf("encoding scenario: %w", err)
	}
	return b.Bytes(), nil
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like \"30s\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Bandwidth is a link rate in bits per second, written "20Mbps", "500kbps",
// "1Gbps" or as a plain number of bits per second.
type Bandwidth int

// ParseBandwidth reads a rate like "20Mbps".
func ParseBandwidth(s string) (Bandwidth, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	lower := strings.ToLower(t)
	for _, u := range []struct {
		suffix string
		m      float64
	}{{"gbps", 1e9}, {"mbps", 1e6}, {"kbps", 1e3}, {"bps", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.m
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*mult > 1e12 {
		return 0, fmt.Errorf("%q is not a bandwidth like \"20Mbps\"", s)
	}
	return Bandwidth(v * mult), nil
}

func (b Bandwidth) String() string {
	switch {
	case b >= 1e9 && b%1e9 == 0:
		return fmt.Sprintf("%dGbps", b/1e9)
	case b >= 1e6 && b%1e6 == 0:
		return fmt.Sprintf("%dMbps", b/1e6)
	case b >= 1e3 && b%1e3 == 0:
		return fmt.Sprintf("%dkbps", b/1e3)
	}
	return fmt.Sprintf("%dbps", int(b))
}

func (b *Bandwidth) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a bandwidth like \"20Mbps\"", n.Line)
	}
	v, err := ParseBandwidth(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

func (b Bandwidth) MarshalYAML() (any, error) { return b.String(), nil }

func (b Bandwidth) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// Package node assembles a Phase node: identity, libp2p host, private DHT,
// capability publishing, the job server and the executor. The daemon, the
// simulator and the conformance suite all run this same code.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/datadir"
	"github.com/phase-protocol/plasm/node/discovery"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/p2p"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/version"
	"github.com/phase-protocol/plasm/node/wasm"
)

// Options build a node. Only Config is required.
type Options struct {
	Config   config.Config
	Identity *identity.Identity // nil: loaded or created in Config.DataDir
	Logger   *slog.Logger       // nil: discard
	Metrics  *metrics.Metrics   // nil: a fresh registry
	// HostExtra are extra libp2p options (the simulator's transports).
	HostExtra []libp2p.Option
	// DHTExtra are extra DHT options (the simulator's thrift at scale).
	DHTExtra []dht.Option
	// Executor, when set, runs this node's jobs: nodes in one process (the
	// simulator, tests) share one runtime and one compiled copy of each
	// module. The caller closes it. nil: the node's own.
	Executor *wasm.Executor
	// JobHooks make the node depart from the job protocol (node/scripted:
	// the simulator's misbehaving nodes, the conformance suite's mutants);
	// nil: an honest node.
	JobHooks *jobs.Hooks
	// BuildRecord overrides how the capability record is described (a node
	// that lies in its record); nil: the node's real description.
	BuildRecord func(caps.Record) caps.Record
	// StampRecord changes each record after its seq and times are stamped,
	// before it is signed (a node that lies about them); nil: none.
	StampRecord func(*caps.Record)
	// FS is how the node writes its data directory; nil: the real
	// filesystem (tests make it fail as a full or read-only disk does).
	FS datadir.FS
}

// Node is a running Phase node.
type Node struct {
	cfg     config.Config
	log     *slog.Logger
	ID      *identity.Identity
	Host    host.Host
	DHT     *dht.IpfsDHT
	Exec    *wasm.Executor
	Metrics *metrics.Metrics

	// Jobs serves /phase/job/1.0.0; nil on a pure client.
	Jobs *jobs.Server

	client     *client.Client
	finder     *discovery.Finder
	sharedExec bool // Exec belongs to the caller
	pub        *discovery.Publisher
	boot       *p2p.Bootstrapper
	started    time.Time
	load       func() caps.Load
	fs         datadir.FS
	health     datadir.Health
	diskOK     bool // the data directory was writable at the last probe
	diskProbed bool

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New builds a node and starts listening; Start joins the network.
func New(ctx context.Context, o Options) (_ *Node, err error) {
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg := o.Config
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := o.Identity
	if id == nil {
		if cfg.DataDir == "" {
			return nil, errors.New("config: data_dir is required when no identity is given")
		}
		if id, err = identity.LoadOrCreate(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	m := o.Metrics
	if m == nil {
		m = metrics.New()
	}
	bootPeers, err := config.ParseBootstrap(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("config: bootstrap: %w", err)
	}
	relays, err := config.ParseBootstrap(cfg.Network.StaticRelays)
	if err != nil {
		return nil, fmt.Errorf("config: network.static_relays: %w", err)
	}
	trusted, err := cfg.Network.TrustedPrefixes()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	n := &Node{cfg: cfg, log: log, ID: id, Metrics: m, started: time.Now(), load: func() caps.Load { return caps.Load{} }, fs: o.FS}
	if n.fs == nil {
		n.fs = datadir.OS{}
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	n.Host, err = p2p.NewHost(p2p.HostOptions{
		Key: id.PrivKey, Listen: cfg.Listen,
		NATPortMap: cfg.Network.NATPortMap, RelayService: cfg.Network.RelayService,
		StaticRelays: relays, HolePunching: cfg.Network.HolePunching,
		Reachability: cfg.Network.Reachability,
		ConnLow:      cfg.Network.ConnLow, ConnHigh: cfg.Network.ConnHigh,
		MaxMemoryMB: cfg.Network.MaxMemoryMB, MaxFDs: cfg.Network.MaxFDs,
		MaxConnsPerPeer: cfg.Network.MaxConnsPerPeer,
		TrustedNetworks: trusted,
		// Job streams: every upload, the queue and running jobs, and
		// per peer its jobs in flight plus a few being refused.
		Protocols:      []protocol.ID{phase.ProtocolJob},
		Streams:        cfg.Jobs.MaxUploads + 2*cfg.Jobs.MaxConcurrent,
		StreamsPerPeer: cfg.Jobs.MaxPerPeer + 4,
		Log:            log,
		Extra:          o.HostExtra,
	})
	if err != nil {
		return nil, err
	}
	validator := caps.Validator{OnReject: func(reason string, err error) {
		m.RecordsRejected.WithLabelValues(reason).Inc()
		log.Warn("capability record rejected", "event", "record_rejected", "reason", reason, "error", phase.Clip(err.Error(), 200))
	}}
	n.DHT, err = p2p.NewDHT(n.Host, p2p.DHTOptions{
		// A node known to be behind NAT cannot answer DHT queries, so it
		// must not sit in others' routing tables (their lookups would wait
		// on it); it still publishes its record and takes jobs, relayed.
		Client:     cfg.DHT.ClientMode || cfg.Network.Reachability == p2p.ReachabilityPrivate,
		BucketSize: cfg.DHT.BucketSize,
		Validators: map[string]record.Validator{caps.Namespace: validator},
		Extra:      o.DHTExtra,
	})
	if err != nil {
		return nil, err
	}
	cacheDir := ""
	if cfg.DataDir != "" && n.probeDisk() {
		cacheDir = filepath.Join(cfg.DataDir, "cache", "wasm")
	}
	if o.Executor != nil {
		n.Exec, n.sharedExec = o.Executor, true
	} else if n.Exec, err = wasm.New(ctx, wasm.Config{
		CacheDir: cacheDir, Logger: log,
		Tier: wasm.Tier(cfg.Wasm.Tier), CompileWorkers: cfg.Wasm.CompileWorkers,
		MemoryCacheBytes: int64(cfg.Wasm.MemoryCacheMB) << 20, DiskCacheBytes: int64(cfg.Wasm.DiskCacheMB) << 20,
	}); err != nil {
		return nil, fmt.Errorf("starting executor: %w", err)
	}
	m.Registry.MustRegister(n.Exec.Collector())

	if !cfg.DHT.ClientMode {
		if n.Jobs, err = jobs.NewServer(jobs.Options{Host: n.Host, Exec: n.Exec, Identity: id, Config: cfg.Jobs, Metrics: m, Log: log, Hooks: o.JobHooks}); err != nil {
			return nil, fmt.Errorf("starting job server: %w", err)
		}
		n.load = func() caps.Load {
			running, queued := n.Jobs.Load()
			return caps.Load{RunningJobs: running, QueuedJobs: queued}
		}
		// Admit against what the record advertises, not the machine.
		advertised := n.describe()
		n.Jobs.UpdatePolicy(func(p *jobs.Policy) { p.CPUCores, p.MemoryMB = advertised.CPUCores, advertised.MemoryMB })
	}
	n.finder = &discovery.Finder{Host: n.Host, DHT: n.DHT}
	n.client = &client.Client{Host: n.Host, Find: n.Find, Forget: n.Forget, Log: log, Metrics: m}

	build := n.describe
	if o.BuildRecord != nil {
		build = func() caps.Record { return o.BuildRecord(n.describe()) }
	}
	n.pub = discovery.NewPublisher(n.Host, n.DHT, build, id.PrivKey, cfg.Caps.RepublishInterval.D(), log)
	n.pub.SetLifetime(cfg.Caps.TTL.D())
	n.pub.SetStamp(o.StampRecord)
	var saved []peer.AddrInfo
	if cfg.DataDir != "" {
		if saved, err = p2p.LoadPeers(cfg.DataDir); err != nil {
			log.Warn("saved peers unreadable; ignoring them", "event", "saved_peers_invalid", "error", err.Error())
			saved, err = nil, nil
		}
	}
	n.boot = &p2p.Bootstrapper{Host: n.Host, DHT: n.DHT, Peers: bootPeers, Saved: saved,
		RetryMin: cfg.DHT.RetryMin.D(), RetryMax: cfg.DHT.RetryMax.D(), Log: log}

	m.Gauge("phase_peers", "Peers currently connected.", func() float64 { return float64(len(n.Host.Network().Peers())) })
	m.Gauge("phase_dht_routing_table_size", "Peers in the DHT routing table.", func() float64 { return float64(n.DHT.RoutingTable().Size()) })
	return n, nil
}

// Client returns the node's job client: it finds capable nodes through
// this node's DHT and submits jobs from this node's identity.
func (n *Node) Client() *client.Client { return n.client }

// describe is the node's true capability record, unsigned.
func (n *Node) describe() caps.Record {
	j := n.cfg.Jobs
	cores := n.cfg.Caps.CPUCores
	if cores == 0 {
		cores = runtime.NumCPU()
	}
	mem := n.cfg.Caps.MemoryMB
	if mem == 0 {
		mem = j.MaxMemoryMB * j.MaxConcurrent
	}
	return caps.Record{
		Arch: runtime.GOARCH, OS: runtime.GOOS, CPUCores: cores, MemoryMB: mem,
		Runtime: version.Runtime, RuntimeVersion: version.RuntimeVersion,
		ABIs: []string{phase.ABIWASIP1},
		Limits: caps.Limits{MaxModuleBytes: j.MaxModuleBytes, MaxMemoryMB: j.MaxMemoryMB,
			MaxTimeoutSeconds: j.MaxTimeoutSeconds, MaxConcurrentJobs: j.MaxConcurrent,
			MaxStdinBytes: j.MaxStdinBytes, MaxJobsPerPeer: j.MaxPerPeer},
		Load: n.load(),
	}
}

// Start joins the network: bootstrap (retrying with backoff), publish the
// capability record, serve the caps protocol, log peer events.
func (n *Node) Start(ctx context.Context) error {
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n.finder.RefreshInBackground(ctx)
	if n.Jobs != nil {
		discovery.ServeCaps(n.Host, n.pub.Live, n.log)
		n.Jobs.Start()
	}
	n.Host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			n.log.Info("peer connected", "event", "peer_connected", "peer", c.RemotePeer().String(), "addr", c.RemoteMultiaddr().String())
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			n.log.Info("peer disconnected", "event", "peer_disconnected", "peer", c.RemotePeer().String())
		},
	})
	sub, err := n.Host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("subscribing to identify events: %w", err)
	}
	n.wg.Add(4)
	go func() {
		defer n.wg.Done()
		n.savePeersPeriodically(ctx)
	}()
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		n.logDiscoveries(ctx, sub)
	}()
	go func() {
		defer n.wg.Done()
		n.boot.Run(ctx)
	}()
	go func() {
		defer n.wg.Done()
		if n.Jobs == nil {
			return // a pure client advertises nothing
		}
		select { // publishing before any peer is reachable only fails
		case <-n.boot.Ready():
		case <-ctx.Done():
			return
		}
		if err := n.pub.Run(ctx); err != nil {
			n.log.Error("capability publisher stopped", "event", "record_publish_failed", "error", err.Error())
		}
	}()
	n.log.Info("node started", "event", "node_started", "peer", n.Host.ID().String(), "addrs", addrStrings(n.Addrs()))
	return nil
}

// Problems lists what is wrong with the node's disk (empty when nothing
// is): /healthz reports them. The node keeps serving from memory.
func (n *Node) Problems() []datadir.Problem { return n.health.Problems() }

// probeDisk checks that the data directory is writable, logs when that
// changes, and records it for /healthz. A node whose disk is full or
// read-only keeps running from memory.
func (n *Node) probeDisk() bool {
	err := datadir.Probe(n.fs, n.cfg.DataDir)
	n.health.Set("data_dir", err)
	ok := err == nil
	switch {
	case !ok && (n.diskOK || !n.diskProbed):
		n.log.Error("data directory not writable: running from memory (compile cache in memory, peers not saved)",
			"event", "data_dir_unwritable", "dir", n.cfg.DataDir, "error", err.Error())
	case ok && !n.diskOK && n.diskProbed:
		n.log.Info("data directory writable again", "event", "data_dir_writable", "dir", n.cfg.DataDir)
	}
	n.diskOK, n.diskProbed = ok, true
	return ok
}

// savePeers writes peers.json and records the outcome for /healthz.
func (n *Node) savePeers() error {
	err := p2p.SavePeers(n.fs, n.cfg.DataDir, n.Host, n.cfg.DHT.SavedPeers)
	n.health.Set("peers", err)
	if err != nil {
		n.log.Error("saving peers failed", "event", "peers_save_failed", "error", err.Error())
	}
	return err
}

// peerSaveInterval is how often known peers are written to the data
// directory, so even a node that is killed rejoins without its bootstrap.
const peerSaveInterval = time.Minute

func (n *Node) savePeersPeriodically(ctx context.Context) {
	if n.cfg.DataDir == "" {
		return
	}
	t := time.NewTicker(peerSaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !n.probeDisk() || len(n.Host.Network().Peers()) == 0 {
				continue // an unwritable directory was logged by the probe
			}
			n.savePeers()
		}
	}
}

// logDiscoveries logs each new peer that speaks the Phase DHT.
func (n *Node) logDiscoveries(ctx context.Context, sub event.Subscription) {
	kad := p2p.ProtocolPrefix + "/kad/1.0.0"
	seen := map[peer.ID]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerIdentificationCompleted)
			if seen[ev.Peer] {
				continue
			}
			for _, p := range ev.Protocols {
				if string(p) == kad {
					seen[ev.Peer] = true
					n.log.Info("peer discovered", "event", "peer_discovered", "peer", ev.Peer.String(), "agent", phase.Clip(ev.AgentVersion, 200))
					break
				}
			}
		}
	}
}

// Ready is closed once the node has joined the network (or found it is
// the first node).
func (n *Node) Ready() <-chan struct{} { return n.boot.Ready() }

// Record returns the node's current signed capability record (nil before
// the first publish).
func (n *Node) Record() *caps.Record { return n.pub.Current() }

// Republish asks for the capability record to be re-signed and re-put now
// (its load or limits changed).
func (n *Node) Republish() { n.pub.Changed() }

// Find returns nodes whose capability records meet req, best first. It
// answers from the records it fetched recently while they are valid
// (discovery.Finder).
func (n *Node) Find(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
	start := time.Now()
	found, err := n.finder.Find(ctx, req, limit)
	n.Metrics.LookupSeconds.Observe(time.Since(start).Seconds())
	return found, err
}

// Lookup is Find that always walks the DHT, so it lists nodes that joined
// since the last lookup (discovery.Finder.Lookup).
func (n *Node) Lookup(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
	start := time.Now()
	found, err := n.finder.Lookup(ctx, req, limit)
	n.Metrics.LookupSeconds.Observe(time.Since(start).Seconds())
	return found, err
}

// Forget drops a node from Find's cache: it could not be reached.
func (n *Node) Forget(id peer.ID) { n.finder.Forget(id) }

// Addrs returns the node's dialable addresses, each ending in /p2p/<id>.
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()})
	return addrs
}

// Config returns the node's configuration.
func (n *Node) Config() config.Config { return n.cfg }

// Uptime is how long the node has been running.
func (n *Node) Uptime() time.Duration { return time.Since(n.started) }

// Close saves known peers for the next start and shuts everything down.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.cancel != nil {
			n.cancel()
		}
		if n.Host != nil && n.cfg.DataDir != "" && len(n.Host.Network().Peers()) > 0 {
			if err := n.savePeers(); err != nil {
				errs = append(errs, err)
			}
		}
		n.wg.Wait()
		if n.finder != nil {
			n.finder.Close()
		}
		if n.Jobs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			errs = append(errs, n.Jobs.Close(ctx))
			cancel()
		}
		if n.DHT != nil {
			errs = append(errs, n.DHT.Close())
		}
		if n.Host != nil {
			errs = append(errs, n.Host.Close())
		}
		if n.Exec != nil && !n.sharedExec {
			errs = append(errs, n.Exec.Close(context.Background()))
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

package sim

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	kbucket "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/scripted"
	"github.com/phase-protocol/plasm/node/wasm"
)

// member is one node slot and the node running in it, if any.
type member struct {
	slot Slot
	id   *identity.Identity
	dir  string
	ev   *eventLog

	mu       sync.Mutex
	n        *node.Node     // nil while down
	client   *client.Client // clients only
	started  bool           // ever started
	departed bool           // left for good (churn)
	closing  sync.WaitGroup // a crash's shutdown still running
}

func (m *member) node() *node.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// cluster is the set of node slots on one simulated network.
type cluster struct {
	sc      Scenario
	plan    Plan
	nw      *Network
	members []*member
	byPeer  map[peer.ID]int
	exec    *wasm.Executor // runs every node's jobs: one compiled copy of each module
	log     *slog.Logger
	stats   *stats
	prog    *Progress
	ctx     context.Context // lives as long as the run
}

func newCluster(ctx context.Context, sc Scenario, plan Plan, workDir, cacheDir string, st *stats, prog *Progress, log *slog.Logger) (*cluster, error) {
	lat := make([]time.Duration, len(plan.Slots))
	for i, s := range plan.Slots {
		lat[i] = s.Latency
	}
	c := &cluster{
		sc: sc, plan: plan, nw: NewNetwork(lat, sc.Network.Jitter.D(), sc.Network.Tick.D(), sc.Seed),
		byPeer: make(map[peer.ID]int, len(plan.Slots)), log: log, stats: st, prog: prog, ctx: ctx,
	}
	c.nw.SetLoss(sc.Network.Loss)
	start := time.Now()
	for _, s := range plan.Slots {
		id, err := identity.FromSeed(s.IdentitySeed[:])
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", s.Index, err)
		}
		dir := filepath.Join(workDir, fmt.Sprintf("node-%05d", s.Index))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("slot %d: data directory: %w", s.Index, err)
		}
		slot := s.Index
		ev := newEventLog(func(event string, r slog.Record) {
			if !log.Enabled(context.Background(), slog.LevelDebug) {
				return
			}
			attrs := []any{"slot", slot, "node_event", event, "sim_ms", time.Since(start).Milliseconds()}
			if event != "peer_connected" && event != "peer_disconnected" && event != "peer_discovered" {
				r.Attrs(func(a slog.Attr) bool {
					if a.Key != "event" {
						attrs = append(attrs, "node_"+a.Key, a.Value.String())
					}
					return true
				})
			}
			log.Debug("node event", append([]any{"event", "sim_node_event"}, attrs...)...)
		})
		c.members = append(c.members, &member{slot: s, id: id, dir: dir, ev: ev})
		c.byPeer[id.ID] = s.Index
	}
	// One executor for every node: each node with an executor of its own
	// held its own ~10 MB copy of examples/hello's compiled code once it
	// ran the module, the largest part of a node's memory at scale.
	// Admission and load stay per node (node/jobs).
	exec, err := wasm.New(ctx, wasm.Config{CacheDir: cacheDir})
	if err != nil {
		return nil, fmt.Errorf("shared executor: %w", err)
	}
	c.exec = exec
	c.nw.Start()
	return c, nil
}

// slotOf returns the slot of a peer, or -1.
func (c *cluster) slotOf(id peer.ID) int {
	if i, ok := c.byPeer[id]; ok {
		return i
	}
	return -1
}

func (c *cluster) bootstrapAddrs(s Slot) []string {
	out := make([]string, 0, len(s.Bootstrap))
	for _, b := range s.Bootstrap {
		out = append(out, ListenAddr(b)+"/p2p/"+c.members[b].id.ID.String())
	}
	return out
}

func (c *cluster) config(m *member) config.Config {
	sc, s := c.sc, m.slot
	cfg := config.Default()
	cfg.DataDir = m.dir
	cfg.Listen = []string{ListenAddr(s.Index)}
	cfg.API = ""
	cfg.Bootstrap = c.bootstrapAddrs(s)
	cfg.Network.HolePunching = false
	cfg.Network.ConnLow, cfg.Network.ConnHigh = sc.Node.ConnLow, sc.Node.ConnHigh
	cfg.Network.MaxMemoryMB = sc.Node.MemoryMB
	if s.Role == RoleClient || (s.Role == RoleServer && s.Index < sc.Network.BootstrapNodes) {
		cfg.Network.MaxMemoryMB = sc.Network.HubMemoryMB
		cfg.Network.ConnLow, cfg.Network.ConnHigh = sc.Network.HubConnLow, sc.Network.HubConnHigh
	}
	cfg.DHT.BucketSize = sc.Node.BucketSize
	cfg.DHT.ClientMode = s.Role == RoleClient
	cfg.Caps.RepublishInterval = config.Duration(sc.Node.RepublishInterval)
	cfg.Caps.TTL = config.Duration(3 * sc.Node.RepublishInterval)
	cfg.Jobs.MaxConcurrent = sc.Node.MaxConcurrent
	cfg.Jobs.MaxPerPeer = sc.Node.MaxPerPeer
	cfg.Jobs.MaxMemoryMB = sc.Node.MaxMemoryMB
	cfg.Jobs.MaxTimeoutSeconds = sc.Node.MaxTimeoutSeconds
	return scripted.Configure(s.Behaviour, cfg)
}

// start builds and starts the node of slot i.
func (c *cluster) start(i int) error {
	m := c.members[i]
	m.closing.Wait() // a restart waits for the crashed node to be gone
	c.nw.SetDown(i, false)
	opts := node.Options{
		Config:    c.config(m),
		Identity:  m.id,
		Logger:    slog.New(m.ev),
		HostExtra: c.nw.Transport(i, Link(int(c.sc.Network.Bandwidth))),
		Executor:  c.exec,
	}
	if g := c.sc.Node.ConnGrace.D(); g > 0 {
		opts.HostExtra = append(slices.Clone(opts.HostExtra), connManager(opts.Config.Network.ConnLow, opts.Config.Network.ConnHigh, g))
	}
	opts.DHTExtra = append(opts.DHTExtra, dht.Concurrency(c.sc.Node.DHTConcurrency))
	if !c.sc.Node.AutoRefresh {
		opts.DHTExtra = append(opts.DHTExtra, dht.DisableAutoRefresh())
	}
	hooks, record, err := scripted.Behave(m.slot.Behaviour, c.foreignIdentity(i))
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	opts.JobHooks, opts.BuildRecord = hooks, record
	n, err := node.New(c.ctx, opts)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	if !c.sc.Node.RefreshAtJoin {
		skipBucketRefresh(n)
	}
	if err := n.Start(c.ctx); err != nil {
		_ = n.Close()
		return fmt.Errorf("node %d: start: %w", i, err)
	}
	m.mu.Lock()
	m.n = n
	m.started = true
	if m.slot.Role == RoleClient {
		m.client = &client.Client{Host: n.Host, Find: c.timedFind(n), Forget: n.Forget, Metrics: n.Metrics}
	}
	m.mu.Unlock()
	c.prog.NodesUp.Add(1)
	return nil
}

// connManager replaces the host's connection manager by one with the
// same watermarks and the given grace period. It closes the one it
// replaces (node/p2p builds it before the simulator's options apply).
func connManager(low, high int, grace time.Duration) libp2p.Option {
	return func(cfg *libp2p.Config) error {
		cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(grace), connmgr.WithSilencePeriod(min(grace, 10*time.Second)))
		if err != nil {
			return fmt.Errorf("connection manager: %w", err)
		}
		if cfg.ConnManager != nil {
			_ = cfg.ConnManager.Close()
		}
		cfg.ConnManager = cm
		return nil
	}
}

// foreignIdentity is whose key a foreign_receipt node signs with: the
// next server's.
func (c *cluster) foreignIdentity(i int) *identity.Identity {
	return c.members[(i+1)%c.plan.Servers].id
}

// timedFind records how long discovery takes for the report.
func (c *cluster) timedFind(n *node.Node) client.Finder {
	return func(ctx context.Context, req caps.Requirements, limit int) ([]caps.Found, error) {
		start := time.Now()
		found, err := n.Find(ctx, req, limit)
		c.stats.discovery(time.Since(start), len(found), err)
		if rec, ok := ctx.Value(jobKey{}).(*JobRecord); ok {
			rec.FoundAt = c.stats.since()
		}
		return found, err
	}
}

// crash cuts slot i off the network at once, as a power cut would, then
// shuts the node down in the background (it cannot tell anyone).
func (c *cluster) crash(i int, departed bool) {
	m := c.members[i]
	m.mu.Lock()
	n := m.n
	m.n = nil
	m.departed = m.departed || departed
	m.mu.Unlock()
	c.nw.SetDown(i, true)
	if n == nil {
		return
	}
	c.prog.NodesUp.Add(-1)
	m.closing.Add(1)
	go func() {
		defer m.closing.Done()
		if err := n.Close(); err != nil {
			c.log.Debug("crashed node closed with errors", "event", "sim_close_error", "slot", i, "error", err.Error())
		}
	}()
}

// waitReady waits until the nodes of the given slots have joined (or ctx
// ends).
func (c *cluster) waitReady(ctx context.Context, slots []int) {
	for _, i := range slots {
		if n := c.members[i].node(); n != nil {
			select {
			case <-n.Ready():
			case <-ctx.Done():
				return
			}
		}
	}
}

// published counts server nodes that are up and have published their
// capability record at least once.
func (c *cluster) published() (done, up int) {
	for _, m := range c.members {
		if m.slot.Role == RoleClient || m.node() == nil {
			continue
		}
		up++
		if m.ev.Count("record_published") > 0 {
			done++
		}
	}
	return done, up
}

// conns counts the open connections of the up nodes; bootstrap nodes and
// clients (the hubs, which hold far more) are averaged apart.
func (c *cluster) conns() ConnStats {
	var st ConnStats
	var n, hubs, sum, hubSum int
	for _, m := range c.members {
		nd := m.node()
		if nd == nil {
			continue
		}
		k := len(nd.Host.Network().Conns())
		if m.slot.Role == RoleClient || m.slot.Index < c.sc.Network.BootstrapNodes {
			hubs++
			hubSum += k
			continue
		}
		n++
		sum += k
		st.Max = max(st.Max, k)
	}
	if n > 0 {
		st.Mean = round1(float64(sum) / float64(n))
	}
	if hubs > 0 {
		st.HubMean = round1(float64(hubSum) / float64(hubs))
	}
	return st
}

// closeAll shuts every node down, then the network.
func (c *cluster) closeAll() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		m.mu.Lock()
		n := m.n
		m.n = nil
		m.mu.Unlock()
		if n != nil {
			wg.Go(func() { _ = n.Close() })
		}
	}
	wg.Wait()
	for _, m := range c.members {
		m.closing.Wait()
	}
	_ = c.exec.Close(context.Background())
	c.nw.Close()
}

// skipBucketRefresh marks every bucket of the node's routing table as
// just refreshed, so the refresh its bootstrap asks for is the self-lookup
// alone, not a lookup per bucket.
func skipBucketRefresh(n *node.Node) {
	rt := n.DHT.RoutingTable()
	now := time.Now()
	for cpl := uint(0); cpl <= kbucket.PeerIDPreimageMaxCpl; cpl++ {
		if id, err := rt.GenRandPeerID(cpl); err == nil {
			rt.ResetCplRefreshedAtForID(kbucket.ConvertPeerID(id), now)
		}
	}
}

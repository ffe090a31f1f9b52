package discovery_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/discovery"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/wire"
)

const waitFor = 10 * time.Second

// eventLog is a slog.Handler that remembers the "event" attribute of every
// line, so tests can wait for what the code logs instead of sleeping.
type eventLog struct {
	mu     sync.Mutex
	events []map[string]any
}

func (l *eventLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *eventLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *eventLog) WithGroup(string) slog.Handler            { return l }
func (l *eventLog) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, m)
	return nil
}

func (l *eventLog) count(event string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e["event"] == event {
			n++
		}
	}
	return n
}

// rejects counts Validator.OnReject calls by reason.
type rejects struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *rejects) hook(reason string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reason]++
}

func (r *rejects) get(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

// permissive accepts anything: the DHT validator of a malicious node.
type permissive struct{}

func (permissive) Validate(string, []byte) error        { return nil }
func (permissive) Select(string, [][]byte) (int, error) { return 0, nil }

type node struct {
	h       host.Host
	d       *dht.IpfsDHT
	priv    crypto.PrivKey
	rejects *rejects
	log     *eventLog
	pub     *discovery.Publisher

	mu   sync.Mutex
	desc caps.Record // what build returns
}

func (n *node) build() caps.Record {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.desc
	r.ABIs = append([]string(nil), n.desc.ABIs...)
	return r
}

func (n *node) setLoad(l caps.Load) {
	n.mu.Lock()
	n.desc.Load = l
	n.mu.Unlock()
	n.pub.Changed()
}

func newNode(t *testing.T, mode dht.ModeOpt, capsValidator record.Validator) *node {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	n := &node{h: h, priv: priv, rejects: &rejects{}, log: &eventLog{}}
	if capsValidator == nil {
		capsValidator = caps.Validator{OnReject: n.rejects.hook}
	}
	d, err := dht.New(h,
		dht.Mode(mode),
		dht.ProtocolPrefix("/phase"),
		dht.NamespacedValidator(caps.Namespace, capsValidator),
		dht.NamespacedValidator("pk", record.PublicKeyValidator{}),
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	n.d = d
	return n
}

func (n *node) join(t *testing.T, ctx context.Context, boot *node) {
	t.Helper()
	require.NoError(t, n.h.Connect(ctx, peer.AddrInfo{ID: boot.h.ID(), Addrs: boot.h.Addrs()}))
	require.Eventually(t, func() bool { return n.d.RoutingTable().Size() > 0 }, waitFor, 10*time.Millisecond,
		"%s never added the bootstrap node to its routing table", n.h.ID())
}

// startPublisher runs a publisher for n until the test ends.
func (n *node) startPublisher(t *testing.T, desc caps.Record, serve bool) {
	t.Helper()
	n.desc = desc
	n.pub = discovery.NewPublisher(n.h, n.d, n.build, n.priv, time.Minute, slog.New(n.log))
	if serve {
		discovery.ServeCaps(n.h, n.pub.Current, slog.New(n.log))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.pub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
}

func desc(arch string, memMB, running, queued, timeout int) caps.Record {
	return caps.Record{
		Arch: arch, OS: "linux", CPUCores: 4, MemoryMB: memMB,
		Runtime: "wazero", RuntimeVersion: "v1.12.0", ABIs: []string{phase.ABIWASIP1},
		Limits: caps.Limits{MaxModuleBytes: 16 << 20, MaxMemoryMB: memMB, MaxTimeoutSeconds: timeout, MaxConcurrentJobs: 8, MaxStdinBytes: 1 << 20, MaxJobsPerPeer: 4},
		Load:   caps.Load{RunningJobs: running, QueuedJobs: queued},
	}
}

// forge returns a record for victim signed by the attacker's key.
func forge(t *testing.T, victim peer.ID, attacker crypto.PrivKey) []byte {
	t.Helper()
	now := time.Now()
	r := desc("amd64", 1<<20, 0, 0, 3600)
	r.Version, r.PeerID, r.Seq = caps.Version, victim.String(), caps.MaxSafeInteger
	r.IssuedAt, r.ExpiresAt = now.Unix(), now.Add(time.Hour).Unix()
	msg, err := r.SigningBytes()
	require.NoError(t, err)
	sig, err := attacker.Sign(msg)
	require.NoError(t, err)
	r.Signature = hex.EncodeToString(sig)
	b, err := r.Marshal()
	require.NoError(t, err)
	return b
}

func peers(fs []caps.Found) []peer.ID {
	out := make([]peer.ID, len(fs))
	for i, f := range fs {
		out[i] = f.Peer.ID
	}
	return out
}

func TestCAP2_CAP3_CAPS4_IntegrationPublishFindQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	boot := newNode(t, dht.ModeServer, nil)
	specs := []struct {
		desc  caps.Record
		serve bool
	}{
		{desc("amd64", 4096, 0, 0, 600), true},  // n1: idle
		{desc("arm64", 8192, 2, 0, 600), true},  // n2
		{desc("x86_64", 1024, 0, 0, 600), true}, // n3: too little memory
		{desc("aarch64", 4096, 0, 0, 10), true}, // n4: per-job timeout short: clamps
		{desc("amd64", 16384, 3, 3, 600), true}, // n5: busy
		{desc("arm64", 2048, 1, 0, 600), false}, // n6: no live endpoint
	}
	nodes := make([]*node, len(specs))
	for i, s := range specs {
		n := newNode(t, dht.ModeServer, nil)
		n.join(t, ctx, boot)
		n.startPublisher(t, s.desc, s.serve)
		nodes[i] = n
	}
	n1, n2, n4, n5, n6 := nodes[0], nodes[1], nodes[3], nodes[4], nodes[5]
	for i, n := range nodes {
		require.Eventually(t, func() bool { return n.log.count("record_published") > 0 }, waitFor, 10*time.Millisecond,
			"node %d never published", i+1)
	}
	assert.Equal(t, "amd64", nodes[2].pub.Current().Arch, "alias normalised before signing")

	client := newNode(t, dht.ModeClient, nil)
	client.join(t, ctx, boot)

	job := caps.Requirements{MinMemoryMB: 2048, TimeoutSeconds: 60}
	t.Run("find returns only matching nodes, ranked, with live load", func(t *testing.T) {
		found, err := discovery.Find(ctx, client.h, client.d, job, 10)
		require.NoError(t, err)
		// CAP-6: n4 would clamp the 60 s job to its 10 s: it matches, last.
		require.Equal(t, []peer.ID{n1.h.ID(), n6.h.ID(), n2.h.ID(), n5.h.ID(), n4.h.ID()}, peers(found))
		for _, f := range found {
			require.NoError(t, caps.Verify(f.Record, time.Now()))
			assert.NotEmpty(t, f.Peer.Addrs)
		}
		assert.True(t, found[0].Live)
		assert.False(t, found[1].Live, "n6 serves no live endpoint: its record comes from the DHT")
		assert.Equal(t, n6.pub.Current().Seq, found[1].Record.Seq)
		assert.Equal(t, caps.Load{RunningJobs: 2}, found[2].Record.Load)
		assert.Equal(t, caps.Load{RunningJobs: 3, QueuedJobs: 3}, found[3].Record.Load)

		// With a limit, Find stops at discovery.Enough(2) = 4 matching
		// records: the best 2 of the first 4 to answer, in rank order.
		limited, err := discovery.Find(ctx, client.h, client.d, job, 2)
		require.NoError(t, err)
		require.Len(t, limited, 2)
		all := peers(found)
		i, j := slices.Index(all, limited[0].Peer.ID), slices.Index(all, limited[1].Peer.ID)
		assert.True(t, i >= 0 && j > i, "limited answer %v is in the full ranking %v, in its order", peers(limited), all)
		assert.LessOrEqual(t, i, 1, "at most one of the 5 was not among the first 4 to answer")
	})

	t.Run("load change is republished and seen live", func(t *testing.T) {
		published := n2.log.count("record_published")
		before := n2.pub.Current().Seq
		n2.setLoad(caps.Load{RunningJobs: 3, QueuedJobs: 4})
		require.Eventually(t, func() bool { return n2.log.count("record_published") > published }, waitFor, 10*time.Millisecond)
		assert.Greater(t, n2.pub.Current().Seq, before)

		found, err := discovery.Find(ctx, client.h, client.d, job, 0)
		require.NoError(t, err)
		require.Len(t, found, 5)
		assert.Equal(t, n2.h.ID(), found[3].Peer.ID, "now the busiest of those that run the job unclamped")
		assert.Equal(t, caps.Load{RunningJobs: 3, QueuedJobs: 4}, found[3].Record.Load)
		assert.True(t, found[3].Live)

		lightly := job
		lightly.MaxLoad = 5
		found, err = discovery.Find(ctx, client.h, client.d, lightly, 0)
		require.NoError(t, err)
		assert.Equal(t, []peer.ID{n1.h.ID(), n6.h.ID(), n4.h.ID()}, peers(found))
	})

	t.Run("required arch", func(t *testing.T) {
		arm := job
		arm.Arch, arm.RequireArch = "aarch64", true
		found, err := discovery.Find(ctx, client.h, client.d, arm, 0)
		require.NoError(t, err)
		assert.Equal(t, []peer.ID{n6.h.ID(), n2.h.ID(), n4.h.ID()}, peers(found))
	})

	t.Run("no match says why", func(t *testing.T) {
		_, err := discovery.Find(ctx, client.h, client.d, caps.Requirements{MinCores: 64}, 0)
		require.ErrorIs(t, err, caps.ErrNoMatch)
		assert.Contains(t, err.Error(), "6 providers")
		assert.Contains(t, err.Error(), "cpu_cores: node has 4, job needs 64")
	})

	t.Run("CAPS-3 bad input on the caps protocol gets an error code, and the node still answers", func(t *testing.T) {
		inputs := map[string]struct {
			in   []byte
			code string // "" : nothing comes back
		}{
			"garbage frame":    {append([]byte{5}, "hello"...), phase.CodeInvalidRequest},
			"oversized":        {[]byte{0x80, 0x80, 0x40}, phase.CodeTooLarge}, // 1 MiB length
			"wrong type":       {append([]byte{28}, `{"type":"payload","args":[]}`...), phase.CodeProtocol},
			"an offer":         {append([]byte{16}, `{"type":"offer"}`...), phase.CodeInvalidRequest},
			"duplicate member": {append([]byte{45}, `{"type":"caps_request","type":"caps_request"}`...), phase.CodeInvalidRequest},
			"closed at once":   {nil, ""},
		}
		for name, c := range inputs {
			s, err := client.h.NewStream(ctx, n1.h.ID(), phase.ProtocolCaps)
			require.NoError(t, err, name)
			_, _ = s.Write(c.in)
			_ = s.CloseWrite()
			_ = s.SetReadDeadline(time.Now().Add(waitFor))
			msg, err := wire.ReadControl(bufio.NewReader(s))
			if c.code == "" {
				assert.Error(t, err, name)
				continue
			}
			require.NoError(t, err, name)
			em, ok := msg.(*wire.ErrorMsg)
			require.True(t, ok, "%s: got %T", name, msg)
			assert.Equal(t, c.code, em.Code, name)
		}
		// WIRE-16: an unknown member of the request is ignored.
		s, err := client.h.NewStream(ctx, n1.h.ID(), phase.ProtocolCaps)
		require.NoError(t, err)
		require.NoError(t, wire.WriteControl(s, json.RawMessage(`{"type":"caps_request","future":{"x":[1.5]}}`)))
		_ = s.CloseWrite()
		msg, err := wire.ReadControl(bufio.NewReader(s))
		require.NoError(t, err)
		assert.IsType(t, &wire.CapsResponse{}, msg)

		rec, err := discovery.QueryCaps(ctx, client.h, n1.h.ID())
		require.NoError(t, err)
		assert.Equal(t, n1.h.ID().String(), rec.PeerID)
		assert.Equal(t, n1.pub.Current().Seq, rec.Seq)
	})

	t.Run("forged records are refused", func(t *testing.T) {
		// An honest node will not even store it locally.
		err := n1.d.PutValue(ctx, caps.Key(n6.h.ID()), forge(t, n6.h.ID(), n1.priv))
		require.Error(t, err)
		assert.Equal(t, 1, n1.rejects.get(caps.ReasonBadSignature))

		// A malicious node that skips validation pushes one to its peers.
		evil := newNode(t, dht.ModeServer, permissive{})
		evil.join(t, ctx, boot)
		honestRejects := func() int {
			total := boot.rejects.get(caps.ReasonBadSignature)
			for _, n := range nodes {
				total += n.rejects.get(caps.ReasonBadSignature)
			}
			return total
		}
		before := honestRejects()
		require.NoError(t, evil.d.PutValue(ctx, caps.Key(n6.h.ID()), forge(t, n6.h.ID(), evil.priv)))
		require.Eventually(t, func() bool { return honestRejects() > before }, waitFor, 10*time.Millisecond,
			"no honest node refused the forged PUT")

		// Lookups still return the genuine record, even with the forger
		// answering GET_VALUE as a DHT server.
		val, err := client.d.GetValue(ctx, caps.Key(n6.h.ID()))
		require.NoError(t, err)
		rec, err := caps.Parse(val)
		require.NoError(t, err)
		require.NoError(t, caps.Verify(rec, time.Now()))
		assert.Equal(t, n6.pub.Current().Seq, rec.Seq)

		found, err := discovery.Find(ctx, client.h, client.d, job, 0)
		require.NoError(t, err)
		for _, f := range found {
			if f.Peer.ID == n6.h.ID() {
				assert.Equal(t, n6.pub.Current().Seq, f.Record.Seq)
				assert.Equal(t, 2048, f.Record.MemoryMB)
			}
		}
	})
}

func TestPublisherRejectsWrongKey(t *testing.T) {
	n := newNode(t, dht.ModeServer, nil)
	other, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	pub := discovery.NewPublisher(n.h, n.d, func() caps.Record { return desc("amd64", 1024, 0, 0, 60) }, other, time.Minute, nil)
	err = pub.Run(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not belong to host")
	assert.Nil(t, pub.Current())
}

func TestPublisherLogsFailureWithoutPeers(t *testing.T) {
	n := newNode(t, dht.ModeServer, nil)
	n.startPublisher(t, desc("arm64", 1024, 0, 0, 60), true)
	require.Eventually(t, func() bool { return n.log.count("record_publish_failed") > 0 }, waitFor, 10*time.Millisecond)
	assert.Zero(t, n.log.count("record_published"))
	// Signed and servable even though the DHT put failed.
	cur := n.pub.Current()
	require.NotNil(t, cur)
	require.NoError(t, caps.Verify(cur, time.Now()))
	assert.Equal(t, n.h.ID().String(), cur.PeerID)
	assert.Equal(t, int64(180), cur.ExpiresAt-cur.IssuedAt, "lifetime is three intervals")
}

// startProvider joins a server node through boot and waits until it has
// published an amd64, 4 GiB capability record.
func startProvider(t *testing.T, ctx context.Context, boot *node) *node {
	t.Helper()
	n := newNode(t, dht.ModeServer, nil)
	n.join(t, ctx, boot)
	n.startPublisher(t, desc("amd64", 4096, 0, 0, 600), true)
	require.Eventually(t, func() bool { return n.log.count("record_published") > 0 }, waitFor, 10*time.Millisecond)
	return n
}

// A node that joins after a Finder's lookup is missing from Find's cached
// answer until the refresh, and present in Lookup's at once (the API's
// listing uses Lookup).
func TestFinderLookupSeesNodesThatJoinedSince(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	boot := newNode(t, dht.ModeServer, nil)
	first := startProvider(t, ctx, boot)
	client := newNode(t, dht.ModeClient, nil)
	client.join(t, ctx, boot)
	f := &discovery.Finder{Host: client.h, DHT: client.d, Refresh: time.Hour}
	job := caps.Requirements{MinMemoryMB: 1024, TimeoutSeconds: 60}
	found, err := f.Find(ctx, job, 10)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{first.h.ID()}, peers(found))

	late := startProvider(t, ctx, boot)
	found, err = f.Find(ctx, job, 10)
	require.NoError(t, err)
	assert.Equal(t, []peer.ID{first.h.ID()}, peers(found), "Find answers from its cache within Refresh")
	found, err = f.Lookup(ctx, job, 10)
	require.NoError(t, err)
	assert.ElementsMatch(t, []peer.ID{first.h.ID(), late.h.ID()}, peers(found), "Lookup walks the DHT again")
	found, err = f.Find(ctx, job, 10)
	require.NoError(t, err)
	assert.Len(t, found, 2, "and Find's cache now holds the late node too")
}

// With RefreshInBackground a stale cache that holds enough answers at
// once, and the refresh runs behind it: a node that joined is missing from
// the answer that started the refresh and present once it is done.
func TestFinderRefreshesInTheBackground(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	boot := newNode(t, dht.ModeServer, nil)
	first := startProvider(t, ctx, boot)
	client := newNode(t, dht.ModeClient, nil)
	client.join(t, ctx, boot)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := &discovery.Finder{Host: client.h, DHT: client.d, Refresh: time.Minute, Now: clock}
	bg, stop := context.WithCancel(ctx)
	f.RefreshInBackground(bg)
	job := caps.Requirements{MinMemoryMB: 1024, TimeoutSeconds: 60}
	found, err := f.Find(ctx, job, 10)
	require.NoError(t, err)
	require.Equal(t, []peer.ID{first.h.ID()}, peers(found))

	late := startProvider(t, ctx, boot)
	mu.Lock()
	now = now.Add(2 * time.Minute) // the cache is stale
	mu.Unlock()
	found, err = f.Find(ctx, job, 10)
	require.NoError(t, err)
	assert.Equal(t, []peer.ID{first.h.ID()}, peers(found), "the stale cache answers at once")
	assert.Eventually(t, func() bool {
		found, err := f.Find(ctx, job, 10)
		return err == nil && len(found) == 2
	}, waitFor, 20*time.Millisecond, "the background refresh learns of %s", late.h.ID())
	stop()
	f.Close()
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	_, err = f.Find(ctx, job, 10)
	require.NoError(t, err, "a closed Finder looks up in the foreground")
}

// A lookup that refreshes a full cache learns nodes it did not know: only
// records it fetched count towards Enough(limit), so a client's pool grows
// with every refresh instead of staying the first nodes it met.
func TestFinderRefreshLearnsNewNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// More providers than a first lookup can fetch: it stops after
	// Enough(1) matches, with at most fetchWorkers (8) fetches in flight.
	const providers = 12
	boot := newNode(t, dht.ModeServer, nil)
	for range providers {
		startProvider(t, ctx, boot)
	}
	client := newNode(t, dht.ModeClient, nil)
	client.join(t, ctx, boot)
	f := &discovery.Finder{Host: client.h, DHT: client.d, Refresh: time.Hour}
	job := caps.Requirements{MinMemoryMB: 1024, TimeoutSeconds: 60}

	want := discovery.Enough(1)
	_, err := f.Lookup(ctx, job, 1)
	require.NoError(t, err)
	first := f.CachedRecords()
	require.GreaterOrEqual(t, first, want)
	require.Less(t, first, providers, "the first lookup stops once enough records match")

	_, err = f.Lookup(ctx, job, 1)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, f.CachedRecords(), min(first+want, providers), "the refresh fetched %d nodes it did not know", want)
}

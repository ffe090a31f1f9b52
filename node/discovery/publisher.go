package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/phase-protocol/plasm/node/caps"
)

const (
	// DefaultInterval is the republish interval used when none is given.
	DefaultInterval = 10 * time.Minute
	// publishTimeout bounds one round of PutValue + Provide.
	publishTimeout = 30 * time.Second
	// firstRetry is the delay before retrying a failed publish; it doubles
	// up to the interval, so a node that starts before its peers appears in
	// the DHT soon after they do rather than one full interval later.
	firstRetry  = time.Second
	minLifetime = time.Minute
)

// Publisher keeps a node's capability record signed and published: in the
// DHT under caps.Key(self), and as provider of each of its caps.ProviderKeys.
type Publisher struct {
	h        host.Host
	d        *dht.IpfsDHT
	build    func() caps.Record
	priv     crypto.PrivKey
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time
	changed  chan struct{}

	lifetime time.Duration // 0: three intervals, at least minLifetime
	stamp    func(*caps.Record)

	mu       sync.Mutex
	current  *caps.Record
	lastSeq  uint64
	provided []string // provider keys of the last successful Provide round
}

// NewPublisher returns a publisher for host h. build returns a fresh
// unsigned description of the node (arch, resources, limits, load); the
// publisher owns the identity and timing fields (version, peer_id, seq,
// issued_at, expires_at, signature) and overwrites them. priv must be the
// host's Ed25519 key. interval <= 0 means DefaultInterval.
func NewPublisher(h host.Host, d *dht.IpfsDHT, build func() caps.Record, priv crypto.PrivKey, interval time.Duration, log *slog.Logger) *Publisher {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		h: h, d: d, build: build, priv: priv, interval: interval, log: log,
		now: time.Now, changed: make(chan struct{}, 1),
	}
}

// SetLifetime sets how long each signed record stays valid (its
// expires_at - issued_at). It should exceed the interval, or the record
// lapses between republishes. Call before Run.
func (p *Publisher) SetLifetime(d time.Duration) { p.lifetime = min(d, caps.MaxLifetime) }

// SetStamp sets a function that may change each record after the publisher
// stamped it and before it is signed (a scripted node that lies about its
// seq or lifetime). Call it before Run.
func (p *Publisher) SetStamp(f func(*caps.Record)) { p.stamp = f }

// Live returns the record to answer a live query with: the current one,
// or a freshly signed one when the node's load has changed since, so a
// client asking the node directly sees its load now. A live record is
// not put in the DHT; the next timed round does that.
func (p *Publisher) Live() *caps.Record {
	cur := p.Current()
	if cur == nil {
		return nil
	}
	if p.build().Load == cur.Load {
		return cur
	}
	rec, err := p.sign()
	if err != nil {
		p.log.Error("capability record not signed", "event", "record_publish_failed", "err", err)
		return cur
	}
	c := *rec
	c.ABIs = slices.Clone(c.ABIs)
	return &c
}

// Changed asks for a prompt republish (load or limits changed). Calls made
// while a publish is pending or running coalesce into one more publish.
func (p *Publisher) Changed() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Current returns a copy of the last signed record, or nil before the first
// one. Pass p.Current to ServeCaps.
func (p *Publisher) Current() *caps.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return nil
	}
	c := *p.current
	c.ABIs = slices.Clone(c.ABIs)
	return &c
}

// Run publishes at once, then every interval and after each Changed, until
// ctx is done (then it returns nil). A failed publish is logged
// (event=record_publish_failed) and retried after 1s, doubling up to the
// interval. Run returns an error only for a misconfiguration.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.check(); err != nil {
		return err
	}
	retry := firstRetry
	timer := time.NewTimer(0) // publish at once
	defer timer.Stop()
	for {
		timed := false
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			timed = true
		case <-p.changed:
		}
		// Timed rounds refresh the provider records too; a change (load)
		// only re-signs and re-puts the record, unless the provider keys
		// changed (publish checks).
		switch err := p.publish(ctx, timed); {
		case err != nil:
			timer.Reset(min(retry, p.interval))
			retry = min(retry*2, p.interval)
		case timed:
			timer.Reset(p.interval)
			retry = firstRetry
		default:
			retry = firstRetry
		}
	}
}

func (p *Publisher) check() error {
	switch {
	case p.h == nil:
		return errors.New("caps publisher: nil host")
	case p.d == nil:
		return errors.New("caps publisher: nil DHT")
	case p.build == nil:
		return errors.New("caps publisher: nil build function")
	case p.priv == nil:
		return errors.New("caps publisher: nil private key")
	}
	if !p.h.ID().MatchesPrivateKey(p.priv) {
		return fmt.Errorf("caps publisher: private key does not belong to host %s", p.h.ID())
	}
	return nil
}

// sign builds, stamps and signs the next record and makes it current.
func (p *Publisher) sign() (*caps.Record, error) {
	rec := p.build()
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Unix micros stay below 2^53 (RFC 8785-safe) until the year 2255 and
	// keep seq increasing across restarts; prev+1 covers a clock step back.
	seq := max(p.lastSeq+1, uint64(now.UnixMicro()))
	rec.Version = caps.Version
	rec.PeerID = p.h.ID().String()
	rec.Seq = seq
	rec.IssuedAt = now.Unix()
	lifetime := p.lifetime
	if lifetime <= 0 {
		lifetime = min(max(3*p.interval, minLifetime), caps.MaxLifetime)
	}
	rec.ExpiresAt = now.Add(lifetime).Unix()
	if p.stamp != nil {
		p.stamp(&rec)
	}
	rec.Signature = ""
	if err := rec.Sign(p.priv); err != nil {
		return nil, err
	}
	p.lastSeq = seq
	p.current = &rec
	return &rec, nil
}

// publish signs a new record, puts it in the DHT and, when provide is set
// or the provider keys changed, provides every capability key.
func (p *Publisher) publish(ctx context.Context, provide bool) error {
	rec, err := p.sign()
	if err != nil {
		p.log.Error("capability record not signed", "event", "record_publish_failed", "err", err)
		return err
	}
	data, err := rec.Marshal()
	if err != nil {
		p.log.Error("capability record not encoded", "event", "record_publish_failed", "seq", rec.Seq, "err", err)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()

	var errs []error
	if err := p.d.PutValue(ctx, caps.Key(p.h.ID()), data); err != nil {
		errs = append(errs, fmt.Errorf("put %s: %w", caps.Key(p.h.ID()), err))
	}
	keys := caps.ProviderKeys(rec)
	p.mu.Lock()
	provide = provide || !slices.Equal(keys, p.provided)
	p.mu.Unlock()
	if provide {
		provideFailed := false
		for _, k := range keys {
			if err := p.d.Provide(ctx, caps.ProviderCID(k), true); err != nil {
				errs = append(errs, fmt.Errorf("provide %s: %w", k, err))
				provideFailed = true
			}
		}
		if !provideFailed {
			p.mu.Lock()
			p.provided = keys
			p.mu.Unlock()
		}
	}
	if err := errors.Join(errs...); err != nil {
		p.log.Warn("capability record publish failed", "event", "record_publish_failed", "seq", rec.Seq, "err", err)
		return err
	}
	p.log.Info("capability record published", "event", "record_published", "seq", rec.Seq,
		"provided", provide, "load", rec.Load.RunningJobs+rec.Load.QueuedJobs)
	return nil
}

package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/caps"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/jobs"
	"github.com/phase-protocol/plasm/node/scripted"
)

// Settings are the node settings the suite chooses for targets it starts
// (in-process and launched): small limits and short deadlines, so the
// cases about queues, caps and timeouts are quick. Other targets publish
// their limits in their capability record; cases read them there.
var Settings = struct {
	StepTimeout    time.Duration
	MaxConcurrent  int
	MaxPerPeer     int
	MaxModuleBytes int64
	MaxStdinBytes  int64
	MaxMemoryMB    int
	MaxTimeoutSecs int
	StdoutCap      int
	StderrCap      int
}{
	StepTimeout: 1500 * time.Millisecond, MaxConcurrent: 4, MaxPerPeer: 2,
	MaxModuleBytes: 1 << 20, MaxStdinBytes: 64 << 10, MaxMemoryMB: 64, MaxTimeoutSecs: 5,
	StdoutCap: 4096, StderrCap: 1024,
}

// SuiteConfig is a node configuration with Settings applied.
func SuiteConfig(dataDir string) config.Config {
	c := scripted.LoopbackConfig(dataDir)
	j := &c.Jobs
	j.StepTimeout = config.Duration(Settings.StepTimeout)
	j.MaxConcurrent, j.MaxPerPeer = Settings.MaxConcurrent, Settings.MaxPerPeer
	j.MaxModuleBytes, j.MaxStdinBytes = Settings.MaxModuleBytes, Settings.MaxStdinBytes
	j.MaxMemoryMB, j.MaxTimeoutSeconds = Settings.MaxMemoryMB, Settings.MaxTimeoutSecs
	j.StdoutCap, j.StderrCap = Settings.StdoutCap, Settings.StderrCap
	c.Caps.RepublishInterval = config.Duration(time.Minute)
	c.Caps.TTL = config.Duration(10 * time.Minute)
	return c
}

// Env is what a run plays against: the node under test (its address, its
// API, whether it runs the suite's Settings) and the suite's own honest
// node in the same network, which API cases need as a place to run jobs.
type Env struct {
	Name       string
	Target     peer.AddrInfo
	API        string // host:port, "" when there is none
	Configured bool   // the target runs with Settings
	InProcess  bool   // the target is Plasm's own node in this process
	Dir        string // scratch space for the run
	// Client is a client command under test (the client contract,
	// docs/conformance-clients.md); the client-side cases run it.
	Client string

	mu     sync.Mutex
	worker *node.Node
	closes []func()
}

// Describe names the target for reports.
func (e *Env) Describe() string { return e.Name }

// Close stops everything the env started.
func (e *Env) Close() {
	e.mu.Lock()
	closes := e.closes
	e.closes = nil
	e.mu.Unlock()
	for i := len(closes) - 1; i >= 0; i-- {
		closes[i]()
	}
}

func (e *Env) onClose(f func()) {
	e.mu.Lock()
	e.closes = append(e.closes, f)
	e.mu.Unlock()
}

// Worker returns the suite's honest node, joined to the target (started on
// first use): the API node's jobs run on it, and DHT cases look the target
// up through it.
func (e *Env) Worker(ctx context.Context) (*node.Node, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.worker != nil {
		return e.worker, nil
	}
	n, err := e.StartNode(ctx, "worker", "", func(c *config.Config) { c.Jobs.MaxConcurrent, c.Jobs.MaxPerPeer = 8, 8 })
	if err != nil {
		return nil, fmt.Errorf("the suite's worker node: %w", err)
	}
	e.worker = n
	e.closes = append(e.closes, func() { _ = n.Close() })
	return n, nil
}

// ThroughAPI returns a view of e whose API is at addr (a proxy in front
// of the target's, say), sharing e's target and worker. Closing e closes
// what they share; the view itself owns nothing.
func (e *Env) ThroughAPI(ctx context.Context, addr string) (*Env, error) {
	w, err := e.Worker(ctx)
	if err != nil {
		return nil, err
	}
	return &Env{Name: e.Name + " via " + addr, Target: e.Target, API: addr, Configured: e.Configured,
		InProcess: e.InProcess, Dir: e.Dir, worker: w}, nil
}

// StartNode starts a node of the suite with Settings (edit changes them)
// and a scripted behaviour ("" for honest), joined to the target, and
// waits until it is ready. The caller closes it.
func (e *Env) StartNode(ctx context.Context, name, behaviour string, edit func(*config.Config)) (*node.Node, error) {
	cfg := SuiteConfig(filepath.Join(e.Dir, name))
	// A node's data directory exists, as plasmd init leaves it.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if edit != nil {
		edit(&cfg)
	}
	addrs, err := peer.AddrInfoToP2pAddrs(&e.Target)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		cfg.Bootstrap = append(cfg.Bootstrap, a.String())
	}
	n, err := scripted.Start(ctx, scripted.Options{Config: cfg, Behaviour: behaviour})
	if err != nil {
		return nil, err
	}
	select {
	case <-n.Ready():
	case <-time.After(30 * time.Second):
		_ = n.Close()
		return nil, fmt.Errorf("node %s could not join the target", name)
	}
	return n, nil
}

// InProcessOptions build an in-process target.
type InProcessOptions struct {
	Dir   string
	Hooks *jobs.Hooks // a mutant's; nil for Plasm as it is
	// Record changes the capability record the node describes (a mutant's).
	Record func(caps.Record) caps.Record
	Stamp  func(*caps.Record)              // a mutant's change to each record's seq or times
	Edit   func(*config.Config)            // a mutant's configuration change
	API    func(http.Handler) http.Handler // a mutant's change to the API
	Logger *slog.Logger
}

// InProcess starts Plasm's own node with Settings, serving its API on
// loopback, and returns the env. Close stops it.
func InProcess(ctx context.Context, o InProcessOptions) (*Env, error) {
	cfg := SuiteConfig(filepath.Join(o.Dir, "target"))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	cfg.API = "127.0.0.1:0"
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	n, err := scripted.Start(ctx, scripted.Options{Config: cfg, Hooks: o.Hooks, Record: o.Record, Stamp: o.Stamp, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	e := &Env{Name: "plasmd (in-process)", Target: peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}, Configured: true, InProcess: true, Dir: o.Dir}
	e.onClose(func() { _ = n.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.Close()
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var h http.Handler = api.New(n, log, api.JobsHandler(n.Client(), n.Metrics, log))
	if o.API != nil {
		h = o.API(h)
	}
	go func() { _ = api.Serve(sctx, l, h) }()
	e.onClose(cancel)
	e.API = l.Addr().String()
	return e, nil
}

// ByAddr is a node reached by its multiaddr (…/p2p/<peer-id>), a black box;
// apiAddr is its API's host:port, or "" when it has none the suite may use.
func ByAddr(addr, apiAddr, dir string) (*Env, error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return nil, fmt.Errorf("--target %q: %w", addr, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("--target %q: must end in /p2p/<peer-id>: %w", addr, err)
	}
	return &Env{Name: addr, Target: *ai, API: apiAddr, Dir: dir}, nil
}

// Ready is the one line a launched node prints on stdout once it serves
// (docs/CONFORMANCE.md).
type Ready struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	API    string   `json:"api"`
}

// Launch starts a node through the launch contract (docs/CONFORMANCE.md):
// `sh -c cmd` with PHASE_LISTEN, PHASE_API, PHASE_DATA_DIR and the
// PHASE_* settings in its environment, and waits for its Ready line.
func Launch(ctx context.Context, cmd, dir string, stderr io.Writer) (*Env, error) {
	dataDir := filepath.Join(dir, "launched")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	c := exec.Command("sh", "-c", cmd)
	// Its own process group, so stopping it reaches the node even when the
	// shell forks rather than execs it (a launcher script, a pipeline).
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Env = append(os.Environ(),
		"PHASE_LISTEN=/ip4/127.0.0.1/tcp/0",
		"PHASE_API=127.0.0.1:0",
		"PHASE_DATA_DIR="+dataDir,
		fmt.Sprintf("PHASE_STEP_TIMEOUT_MS=%d", Settings.StepTimeout.Milliseconds()),
		fmt.Sprintf("PHASE_MAX_CONCURRENT=%d", Settings.MaxConcurrent),
		fmt.Sprintf("PHASE_MAX_PER_PEER=%d", Settings.MaxPerPeer),
		fmt.Sprintf("PHASE_MAX_MODULE_BYTES=%d", Settings.MaxModuleBytes),
		fmt.Sprintf("PHASE_MAX_STDIN_BYTES=%d", Settings.MaxStdinBytes),
		fmt.Sprintf("PHASE_MAX_MEMORY_MB=%d", Settings.MaxMemoryMB),
		fmt.Sprintf("PHASE_MAX_TIMEOUT_SECONDS=%d", Settings.MaxTimeoutSecs),
		fmt.Sprintf("PHASE_STDOUT_CAP=%d", Settings.StdoutCap),
		fmt.Sprintf("PHASE_STDERR_CAP=%d", Settings.StderrCap),
	)
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.Stderr = stderr
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("--launch: %w", err)
	}
	group := -c.Process.Pid
	stop := func() {
		_ = syscall.Kill(group, syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(group, syscall.SIGKILL)
			<-done
		}
		// The shell may be gone while the node still winds down: wait for
		// the whole group, so nothing outlives the run.
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(group, 0) == nil {
			if time.Now().After(deadline) {
				_ = syscall.Kill(group, syscall.SIGKILL)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ready := make(chan Ready, 1)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r Ready
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.PeerID != "" {
				ready <- r
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		errc <- errors.New("--launch: the node exited or closed stdout before printing its ready line")
	}()
	var r Ready
	select {
	case r = <-ready:
	case err := <-errc:
		stop()
		return nil, err
	case <-time.After(60 * time.Second):
		stop()
		return nil, errors.New("--launch: no ready line within 60 s")
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	id, err := peer.Decode(r.PeerID)
	if err != nil {
		stop()
		return nil, fmt.Errorf("--launch: ready line peer_id: %w", err)
	}
	ai := peer.AddrInfo{ID: id}
	for _, a := range r.Addrs {
		m, err := ma.NewMultiaddr(strings.TrimSuffix(a, "/p2p/"+r.PeerID))
		if err == nil {
			ai.Addrs = append(ai.Addrs, m)
		}
	}
	e := &Env{Name: "launched: " + cmd, Target: ai, API: r.API, Configured: true, Dir: dir}
	e.onClose(stop)
	return e, nil
}

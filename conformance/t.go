package conformance

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/phase-protocol/plasm/conformance/ref"
	"github.com/phase-protocol/plasm/conformance/spec"
)

// T is one case's view of the run: the env, a fresh client identity, the
// stream helpers, and the verdict it is building.
type T struct {
	ctx  context.Context
	env  *Env
	name string

	mu         sync.Mutex
	verdict    Verdict
	msg        []string
	transcript []Line
	hosts      []host.Host
	cleanups   []func()
}

// errStop ends a case from a helper (Fatalf, NA).
var errStop = errors.New("case stopped")

func runCase(ctx context.Context, env *Env, c Case) (res CaseResult) {
	start := time.Now()
	t := &T{ctx: ctx, env: env, name: c.Name, verdict: Pass}
	res = CaseResult{Name: c.Name, Reqs: c.Reqs, Side: c.Side}
	defer func() {
		res.Verdict, res.Message, res.Transcript, res.Duration = t.verdict, strings.Join(t.msg, "; "), t.transcript, time.Since(start)
		if res.Verdict == Pass {
			res.Transcript = nil
		}
	}()
	switch {
	case c.Needs&NeedAPI != 0 && env.API == "":
		t.verdict, t.msg = NotApplicable, []string{"the target has no API the suite may use"}
		return
	case c.Needs&NeedPlasm != 0 && !env.InProcess:
		t.verdict, t.msg = NotApplicable, []string{"checks Plasm's own code: in-process target only"}
		return
	case c.Needs&NeedConfig != 0 && !env.Configured:
		t.verdict, t.msg = NotApplicable, []string{"needs a target running the suite's settings (in-process or --launch)"}
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.cleanup()
		defer func() {
			if p := recover(); p != nil {
				t.fail(fmt.Sprintf("case panicked: %v", p))
			}
		}()
		c.Run(t)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.fail("case did not finish within 3 minutes")
	}
	return
}

func (t *T) cleanup() {
	t.mu.Lock()
	cs, hs := t.cleanups, t.hosts
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	for _, h := range hs {
		_ = h.Close()
	}
}

// Ctx is the run's context.
func (t *T) Ctx() context.Context { return t.ctx }

// Env is the target.
func (t *T) Env() *Env { return t.env }

// Cleanup runs f when the case ends.
func (t *T) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *T) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.verdict = Fail
	t.msg = append(t.msg, msg)
}

// Errorf records a failure and goes on.
func (t *T) Errorf(format string, a ...any) { t.fail(fmt.Sprintf(format, a...)) }

// Fatalf records a failure and ends the case.
func (t *T) Fatalf(format string, a ...any) {
	t.fail(fmt.Sprintf(format, a...))
	runtime.Goexit()
}

// NA ends the case as not applicable to this target.
func (t *T) NA(format string, a ...any) {
	t.mu.Lock()
	if t.verdict == Pass {
		t.verdict = NotApplicable
	}
	t.msg = append(t.msg, fmt.Sprintf(format, a...))
	t.mu.Unlock()
	runtime.Goexit()
}

// Note adds a line to the transcript.
func (t *T) Note(format string, a ...any) { t.line("note", fmt.Sprintf(format, a...)) }

func (t *T) line(dir, text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.transcript) < 200 {
		t.transcript = append(t.transcript, Line{Dir: dir, Text: shorten(text, 600)})
	}
}

// Check fails the case with msg when ok is false.
func (t *T) Check(ok bool, format string, a ...any) {
	if !ok {
		t.Errorf(format, a...)
	}
}

// Host returns a fresh libp2p host: a new identity that listens nowhere.
func (t *T) Host() host.Host {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.NoListenAddrs, libp2p.DisableMetrics())
	if err != nil {
		t.Fatalf("host: %v", err)
	}
	t.mu.Lock()
	t.hosts = append(t.hosts, h)
	t.mu.Unlock()
	return h
}

// Conn is one stream to the target, with a transcript.
type Conn struct {
	t  *T
	S  network.Stream
	br *bufio.Reader
}

// Open opens a stream for protocol p from host h (nil: a fresh host).
func (t *T) Open(h host.Host, p string) *Conn {
	if h == nil {
		h = t.Host()
	}
	ctx, cancel := context.WithTimeout(t.ctx, 15*time.Second)
	defer cancel()
	h.Peerstore().AddAddrs(t.env.Target.ID, t.env.Target.Addrs, time.Hour)
	s, err := h.NewStream(ctx, t.env.Target.ID, protocol.ID(p))
	if err != nil {
		t.Fatalf("open %s stream to the target: %v", p, err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return &Conn{t: t, S: s, br: bufio.NewReader(s)}
}

// Write sends raw bytes.
func (c *Conn) Write(b []byte) error {
	c.t.line("sent", describe(b))
	_ = c.S.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.S.Write(b)
	return err
}

// Send sends one control frame holding body, as it is.
func (c *Conn) Send(body string) error { return c.Write(ref.Frame([]byte(body))) }

// CloseWrite half-closes.
func (c *Conn) CloseWrite() { _ = c.S.CloseWrite() }

// Frame reads one frame within wait (cap: max bytes).
func (c *Conn) Frame(max int, wait time.Duration) ([]byte, error) {
	_ = c.S.SetReadDeadline(time.Now().Add(wait))
	b, err := ref.ReadFrame(c.br, max)
	if err != nil {
		c.t.line("got", "error: "+err.Error())
		return nil, err
	}
	c.t.line("got", describe(ref.Frame(b)))
	return b, nil
}

// Msg reads one control message within wait.
func (c *Conn) Msg(wait time.Duration) (map[string]any, error) {
	b, err := c.Frame(65536, wait)
	if err != nil {
		return nil, err
	}
	return ref.Object(b)
}

// Expect reads one control message and requires its type to be one of
// types; it ends the case otherwise.
func (c *Conn) Expect(wait time.Duration, types ...string) map[string]any {
	m, err := c.Msg(wait)
	if err != nil {
		c.t.Fatalf("expected %s, got %v", strings.Join(types, "|"), err)
	}
	typ, _ := m["type"].(string)
	for _, want := range types {
		if typ == want {
			return m
		}
	}
	c.t.Fatalf("expected %s, got %s", strings.Join(types, "|"), compact(m))
	return nil
}

// Ended reports whether the stream ends (EOF or reset, nothing more)
// within wait.
func (c *Conn) Ended(wait time.Duration) bool {
	_ = c.S.SetReadDeadline(time.Now().Add(wait))
	_, err := c.br.ReadByte()
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func describe(b []byte) string {
	if len(b) <= 2 {
		return hex.EncodeToString(b)
	}
	body := b
	// skip the varint
	for i := 0; i < len(b) && i < 10; i++ {
		if b[i] < 0x80 {
			body = b[i+1:]
			break
		}
	}
	if len(body) > 0 && body[0] == '{' {
		return fmt.Sprintf("frame %d bytes: %s", len(body), body)
	}
	return fmt.Sprintf("%d bytes: %s", len(b), hex.EncodeToString(b[:min(len(b), 48)]))
}

func compact(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// Module returns one of the published test modules (examples/wat).
func (t *T) Module(name string) []byte {
	b, err := spec.File("examples/wat/" + name + ".wasm")
	if err != nil {
		t.Fatalf("test module %s: %v", name, err)
	}
	return b
}

package conformance

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// frameCases: the framing rules (spec-wire §2), sent as bytes the suite
// writes itself.
func frameCases() []Case {
	return []Case{
		{
			Name: "frame/control-over-65536",
			Reqs: []string{"WIRE-6", "WIRE-8", "JOB-3"},
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolJob)
				// Only the length: a node must refuse before reading a body.
				_ = c.Write(ref.AppendVarint(nil, 65537))
				m := c.Expect(answerWait, "rejected", "error")
				t.Check(m["type"] == "rejected" && m["reason"] == "too_large", "a 65537-byte control frame: %s", compact(m))
				stillServes(t)
			},
		},
		{
			Name: "frame/control-of-exactly-65536",
			Reqs: []string{"WIRE-8", "WIRE-11"},
			Side: SideNode,
			Run: func(t *T) {
				body := offerWith(t, nil)
				body += strings.Repeat(" ", 65536-len(body)) // JSON allows trailing whitespace
				x := &Exchange{C: t.Open(nil, ProtocolJob)}
				_ = x.C.Write(ref.Frame([]byte(body)))
				m := x.C.Expect(answerWait, "accepted", "rejected", "error")
				t.Check(m["type"] == "accepted", "a valid 65536-byte offer: %s", compact(m))
			},
		},
		{
			Name: "frame/length-not-minimal",
			Reqs: []string{"WIRE-3", "JOB-13"},
			Side: SideNode,
			Run: func(t *T) {
				body := offerWith(t, nil)
				c := t.Open(nil, ProtocolJob)
				// The length with a redundant 0x80 0x00 tail: not minimal.
				l := ref.AppendVarint(nil, uint64(len(body)))
				l[len(l)-1] |= 0x80
				l = append(l, 0x00)
				_ = c.Write(append(l, body...))
				m, err := c.Msg(answerWait)
				t.Check(err != nil || m["type"] == "error" || m["type"] == "rejected", "a non-minimal length was accepted: %v", m)
				if m != nil && m["type"] == "accepted" {
					t.Errorf("WIRE-3: accepted an offer framed with a non-minimal length")
				}
				stillServes(t)
			},
		},
		{
			Name: "frame/length-over-10-bytes",
			Reqs: []string{"WIRE-4"},
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolJob)
				_ = c.Write(bytes.Repeat([]byte{0x80}, 11))
				m, err := c.Msg(answerWait)
				t.Check(err != nil || m["type"] != "accepted", "an 11-byte length was taken")
				stillServes(t)
			},
		},
		{
			Name: "frame/length-overflow",
			Reqs: []string{"WIRE-4"},
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolJob)
				_ = c.Write(append(bytes.Repeat([]byte{0xff}, 9), 0x02))
				m, err := c.Msg(answerWait)
				t.Check(err != nil || m["type"] != "accepted", "a length over 64 bits was taken")
				stillServes(t)
			},
		},
		{
			Name: "frame/truncated-offer",
			Reqs: []string{"WIRE-7"},
			Side: SideNode,
			Run: func(t *T) {
				body := offerWith(t, nil)
				c := t.Open(nil, ProtocolJob)
				_ = c.Write(append(ref.AppendVarint(nil, uint64(len(body))), body[:len(body)/2]...))
				c.CloseWrite()
				m, err := c.Msg(answerWait)
				t.Check(err != nil || m["type"] == "error", "a truncated offer got %v", m)
				stillServes(t)
			},
		},
		{
			Name: "frame/module-length-differs",
			Reqs: []string{"WIRE-10", "JOB-6"},
			Side: SideNode,
			Run: func(t *T) {
				mod := freshModule(t)
				x := t.Offer(nil, Job{Module: mod})
				x.Accepted(t)
				_ = x.C.Write(append(ref.Frame([]byte(`{"type":"payload","args":[]}`)), ref.Frame(mod[:len(mod)-1])...))
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "invalid_request", "JOB-6: a module frame shorter than module_size: %s", compact(m))
				stillServes(t)
			},
		},
		{
			Name: "frame/stdin-length-differs",
			Reqs: []string{"WIRE-10", "JOB-6"},
			Side: SideNode,
			Run: func(t *T) {
				mod := freshModule(t)
				x := t.Offer(nil, Job{Module: mod, Stdin: []byte("abc")})
				x.Accepted(t)
				_ = x.C.Write(ref.Frames([]byte(`{"type":"payload","args":[]}`), mod, []byte("abcd")))
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "invalid_request", "JOB-6: a stdin frame longer than stdin_size: %s", compact(m))
			},
		},
		{
			Name: "frame/raw-bytes-not-encoded",
			Reqs: []string{"WIRE-9"},
			Side: SideNode,
			Run: func(t *T) {
				stdin := []byte{0, 1, 2, 0xfe, 0xff, '\n'}
				x := t.Run(Job{Module: t.Module("echo"), Stdin: stdin})
				t.Check(bytes.HasSuffix(x.Stdout, stdin), "stdin bytes came back as %x", x.Stdout)
			},
		},
		{
			Name:      "frame/stall-inside-a-frame",
			Reqs:      []string{"JOB-14", "WIRE-6"},
			Side:      SideNode,
			Exclusive: true,
			Run: func(t *T) {
				mod := freshModule(t)
				x := t.Offer(nil, Job{Module: mod})
				x.Accepted(t)
				// A module frame that announces its length and stalls.
				_ = x.C.Write(append(ref.Frame([]byte(`{"type":"payload","args":[]}`)), ref.AppendVarint(nil, uint64(len(mod)))...))
				m, err := x.C.Msg(stepWait(t))
				t.Check(err == nil && m["type"] == "error" && m["code"] == "timeout", "a stalled module frame: %v %v", m, err)
				stillServes(t)
			},
		},
		{
			Name: "frame/lengths-in-shortest-form",
			Reqs: []string{"WIRE-2", "WIRE-1"},
			Side: SideNode,
			Run: func(t *T) {
				// Frames of 1-, 2- and 3-byte lengths and an empty one: the
				// answer, the result, stdout (over 16383 bytes), stderr
				// (empty); then a caps answer.
				stdin := bytes.Repeat([]byte("0123456789abcdef"), 1100)
				j := Job{Module: t.Module("echo"), Args: []string{"a"}, Stdin: stdin}
				c := t.Open(nil, ProtocolJob)
				if err := c.Send(Marshal(j.Offer())); err != nil {
					t.Fatalf("sending the offer: %v", err)
				}
				check := func(what string) []byte {
					prefix, body := rawFrame(t, c, 10*time.Second)
					want := ref.AppendVarint(nil, uint64(len(body)))
					t.Check(bytes.Equal(prefix, want), "WIRE-2: the %s frame of %d bytes has length bytes %x, the shortest form is %x", what, len(body), prefix, want)
					return body
				}
				ans, err := ref.Object(check("answer"))
				if err != nil || ans["type"] != "accepted" {
					t.Fatalf("expected accepted, got %v (%v)", ans, err)
				}
				payload := ref.Frame([]byte(`{"type":"payload","args":["a"]}`))
				if have, _ := ans["have_module"].(bool); !have {
					payload = append(payload, ref.Frame(j.Module)...)
				}
				_ = c.Write(append(payload, ref.Frame(stdin)...))
				c.CloseWrite()
				check("result")
				out := check("stdout")
				if len(out) <= 16383 {
					t.Note("stdout of %d bytes (the node's cap): no 3-byte length to check", len(out))
				}
				check("stderr")

				cc := t.Open(nil, ProtocolCaps)
				_ = cc.Send(`{"type":"caps_request"}`)
				prefix, body := rawFrame(t, cc, 10*time.Second)
				t.Check(bytes.Equal(prefix, ref.AppendVarint(nil, uint64(len(body)))), "WIRE-2: the caps frame of %d bytes has length bytes %x", len(body), prefix)
			},
		},
	}
}

// rawFrame reads one frame's length bytes exactly as sent, and its body
// (at most 1 MiB).
func rawFrame(t *T, c *Conn, wait time.Duration) (prefix, body []byte) {
	_ = c.S.SetReadDeadline(time.Now().Add(wait))
	var n uint64
	for i := 0; ; i++ {
		b, err := c.br.ReadByte()
		if err != nil {
			t.Fatalf("reading a frame length: %v", err)
		}
		prefix = append(prefix, b)
		n |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			break
		}
		if i == 9 {
			t.Fatalf("WIRE-4: a frame length over 10 bytes: %x", prefix)
		}
	}
	if n > 1<<20 {
		t.Fatalf("a frame of %d bytes, more than the case expects", n)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		t.Fatalf("reading a %d-byte frame body: %v", n, err)
	}
	t.line("got", fmt.Sprintf("length bytes %x, body %s", prefix, describe(ref.Frame(body))))
	return prefix, body
}

// stepWait is how long a case waits for a node's own step deadline: a
// little over the suite's setting on targets it configured, and a minute
// and a half elsewhere (Plasm's default is 30 s).
func stepWait(t *T) time.Duration {
	if t.Env().Configured {
		return 2*Settings.StepTimeout + 3*time.Second
	}
	return 90 * time.Second
}

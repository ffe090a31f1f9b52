package conformance

import (
	"time"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// stepCases: messages out of order, stalls at each step, errors from the
// client, and how the node ends the exchange (spec-wire §5).
func stepCases() []Case {
	wrongAfterAccept := func(name, body string, reqs ...string) Case {
		return Case{
			Name: "step/" + name,
			Reqs: append([]string{"JOB-13", "JOB-5"}, reqs...),
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny")})
				x.Accepted(t)
				_ = x.C.Send(body)
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "protocol", "%s instead of payload: %s", name, compact(m))
				t.Check(x.C.Ended(5*time.Second), "JOB-12: the node did not end the exchange after its error")
				stillServes(t)
			},
		}
	}
	timeoutAt := func(name string, send func(t *T, x *Exchange)) Case {
		return Case{
			Name:      "step/timeout-" + name,
			Reqs:      []string{"JOB-14", "JOB-12"},
			Side:      SideNode,
			Exclusive: true,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: freshModule(t), Stdin: []byte("in")})
				x.Accepted(t)
				send(t, x)
				m, err := x.C.Msg(stepWait(t))
				if err != nil {
					t.Fatalf("JOB-14: no error message after stalling before the %s: %v", name, err)
				}
				t.Check(m["type"] == "error" && m["code"] == "timeout", "stalled before the %s: %s", name, compact(m))
				stillServes(t)
			},
		}
	}
	return []Case{
		wrongAfterAccept("result-instead-of-payload", `{"type":"result","outcome":"exited","exit_code":0,"stdout_size":0,"stderr_size":0,"stdout_truncated":false,"stderr_truncated":false,"wall_time_ms":0,"queue_time_ms":0,"receipt":{}}`),
		{
			Name: "step/second-offer",
			Reqs: []string{"JOB-13", "JOB-1"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny")})
				x.Accepted(t)
				_ = x.C.Send(offerWith(t, nil))
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "protocol", "a second offer on one stream: %s", compact(m))
				stillServes(t)
			},
		},
		wrongAfterAccept("caps-request-on-job-stream", `{"type":"caps_request"}`, "CAPS-1"),
		{
			Name: "step/first-frame-not-offer",
			Reqs: []string{"JOB-2", "JOB-13"},
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolJob)
				_ = c.Send(`{"type":"payload","args":[]}`)
				m := c.Expect(answerWait, "error", "rejected")
				t.Check(m["type"] == "error" && m["code"] == "protocol", "a payload as the first frame: %s", compact(m))
				stillServes(t)
			},
		},
		{
			Name: "step/invalid-message-before-wrong-step",
			Reqs: []string{"JOB-13", "WIRE-21"},
			Side: SideNode,
			Run: func(t *T) {
				// An invalid payload (args not strings) where a payload is due:
				// invalid_request, the spec's first check.
				x := t.Offer(nil, Job{Module: t.Module("tiny")})
				x.Accepted(t)
				_ = x.C.Send(`{"type":"payload","args":[1]}`)
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "invalid_request", "an invalid payload: %s", compact(m))
			},
		},
		{
			Name: "step/args-count-mismatch",
			Reqs: []string{"JOB-7"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("echo"), Args: []string{"a", "b"}})
				x.Accepted(t)
				_ = x.C.Send(`{"type":"payload","args":["a"]}`)
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "invalid_request", "1 arg where args_count is 2: %s", compact(m))
			},
		},
		{
			Name: "step/nul-in-argument",
			Reqs: []string{"WIRE-21"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("echo"), Args: []string{"a"}})
				x.Accepted(t)
				_ = x.C.Send(`{"type":"payload","args":["a\u0000b"]}`)
				m := x.C.Expect(answerWait, "error")
				t.Check(m["code"] == "invalid_request", "an argument with NUL: %s", compact(m))
			},
		},
		{
			Name: "step/hash-mismatch",
			Reqs: []string{"JOB-8", "MAN-2"},
			Side: SideNode,
			Run: func(t *T) {
				mod := t.Module("tiny")
				x := t.Offer(nil, Job{Module: mod, Edit: manifestEdit(func(m map[string]any) {
					m["module_hash"] = ref.Hash(append(append([]byte(nil), mod...), 0))
				})})
				x.Accepted(t)
				x.SendPayload(t)
				m := x.C.Expect(answerWait, "error", "result")
				t.Check(m["type"] == "error" && m["code"] == "hash_mismatch", "module bytes that do not match the manifest: %s", compact(m))
			},
		},
		{
			Name: "step/client-error-ends-exchange",
			Reqs: []string{"JOB-12"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny")})
				x.Accepted(t)
				_ = x.C.Send(`{"type":"error","code":"internal","detail":"client gives up"}`)
				t.Check(x.C.Ended(10*time.Second), "the node went on after the client's error")
				stillServes(t)
			},
		},
		{
			Name: "step/answer-while-client-still-writing",
			Reqs: []string{"JOB-19"},
			Side: SideNode,
			Run: func(t *T) {
				// An offer over the module cap followed at once by a large
				// module frame: the rejection must still arrive (JOB-19).
				limit := t.Record().Limit("max_module_bytes")
				body := offerWith(t, func(o map[string]any) { o["module_size"] = limit + 1 })
				c := t.Open(nil, ProtocolJob)
				// The offer, the payload and half a megabyte of the module,
				// written without waiting for the answer.
				out := append(ref.Frame([]byte(body)), ref.Frame([]byte(`{"type":"payload","args":[]}`))...)
				out = append(ref.AppendVarint(out, uint64(limit+1)), make([]byte, 512<<10)...)
				go func() { _ = c.Write(out) }()
				m := c.Expect(answerWait, "rejected", "error")
				t.Check(m["type"] == "rejected", "got %s", compact(m))
			},
		},
		timeoutAt("payload", func(*T, *Exchange) {}),
		timeoutAt("module", func(t *T, x *Exchange) { _ = x.C.Send(`{"type":"payload","args":[]}`) }),
		timeoutAt("stdin", func(t *T, x *Exchange) {
			_ = x.C.Write(ref.Frames([]byte(`{"type":"payload","args":[]}`), x.Job.Module))
		}),
		{
			Name:      "step/timeout-offer",
			Reqs:      []string{"JOB-14"},
			Side:      SideNode,
			Exclusive: true,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolJob)
				m, err := c.Msg(stepWait(t))
				t.Check(err != nil || m["type"] == "error", "a silent client got %v", m)
				if err == nil {
					t.Check(m["code"] == "timeout", "a silent client: %s", compact(m))
				}
			},
		},
		{
			Name:      "step/slow-peer-does-not-block-others",
			Reqs:      []string{"JOB-14"},
			Side:      SideNode,
			Exclusive: true,
			Run: func(t *T) {
				for range 3 {
					x := t.Offer(nil, Job{Module: t.Module("tiny")})
					x.Accepted(t) // held, silent
				}
				start := time.Now()
				stillServes(t)
				t.Check(time.Since(start) < 20*time.Second, "an honest job took %s while 3 peers stalled", time.Since(start))
			},
		},
	}
}

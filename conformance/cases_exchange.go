package conformance

import (
	"bytes"
	"slices"
	"time"
)

// exchangeCases: whole job exchanges, honest, from the spec's side.
func exchangeCases() []Case {
	return []Case{
		{
			Name: "exchange/echo-args-and-stdin",
			Reqs: []string{"JOB-1", "JOB-2", "JOB-5", "JOB-9", "EXEC-1", "RCPT-1", "RCPT-3", "RCPT-4", "RCPT-5", "RCPT-6",
				"RCPT-7", "RCPT-8", "RCPT-9", "ID-1", "WIRE-1", "WIRE-9"},
			Side: SideNode,
			Run: func(t *T) {
				args := []string{"a b", "ü \"q\"", "", "\t"}
				stdin := []byte("hello\x00\xffbin")
				x := t.Run(Job{Module: t.Module("echo"), Args: args, Stdin: stdin})
				want := []byte("job\n")
				for _, a := range args {
					want = append(append(want, a...), '\n')
				}
				want = append(want, stdin...)
				t.Check(bytes.Equal(x.Stdout, want), "EXEC-1: the guest saw argv/stdin %q, want %q", x.Stdout, want)
				t.Check(x.Receipt.Str("outcome") == "exited" && x.Receipt.Int("exit_code") == 0, "outcome %s exit %d", x.Receipt.Str("outcome"), x.Receipt.Int("exit_code"))
			},
		},
		{
			Name: "exchange/empty-stdin-and-no-args",
			Reqs: []string{"JOB-5", "WIRE-5", "JOB-9"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Run(Job{Module: t.Module("tiny")})
				t.Check(string(x.Stdout) == "ok\n", "stdout %q, want \"ok\\n\"", x.Stdout)
				t.Check(len(x.Stderr) == 0, "stderr %q, want empty (an empty stderr frame is 00)", x.Stderr)
			},
		},
		{
			Name: "exchange/have-module-after-first-run",
			Reqs: []string{"JOB-16", "JOB-5"},
			Side: SideNode,
			Run: func(t *T) {
				mod := freshModule(t)
				first := t.Offer(nil, Job{Module: mod})
				if have, _ := first.Accepted(t)["have_module"].(bool); have {
					t.Errorf("have_module is true for a module the node cannot hold yet")
				}
				first.SendPayload(t)
				first.ReadResult(t, time.Minute)
				first.Verify(t)
				second := t.Offer(nil, Job{Module: mod})
				if have, _ := second.Accepted(t)["have_module"].(bool); !have {
					t.NA("the node did not keep the module (have_module false); JOB-16 only forbids a wrong true")
				}
				second.SendPayload(t) // without the module frame
				second.ReadResult(t, time.Minute)
				second.Verify(t)
				t.Check(string(second.Stdout) == "ok\n", "stored module ran %q", second.Stdout)
			},
		},
		{
			Name: "exchange/nothing-after-stderr",
			Reqs: []string{"JOB-17", "JOB-9"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny")})
				x.SendPayload(t)
				x.ReadResult(t, time.Minute)
				t.Check(x.C.Ended(10*time.Second), "the node sent more after the stderr frame, or did not close")
			},
		},
		{
			Name: "exchange/rejected-then-closed",
			Reqs: []string{"JOB-4", "JOB-3"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny"), CPUCores: 64, Edit: func(o map[string]any) {
					o["manifest"].(map[string]any)["cpu_cores"] = 64
				}})
				if x.Answer["type"] != "rejected" {
					t.NA("the node accepted 64 cores (it offers that many)")
				}
				t.Check(x.C.Ended(10*time.Second), "JOB-4: the node did not close the stream after rejected")
			},
		},
		{
			Name: "exchange/progress-when-asked",
			Reqs: []string{"JOB-18"},
			Side: SideNode,
			Run: func(t *T) {
				// loop spins until the time limit, so the job runs as long as the
				// node allows; each gap between messages must stay near the promise.
				x := t.Offer(nil, Job{Module: t.Module("loop"), Progress: true, TimeoutSeconds: Settings.MaxTimeoutSecs})
				acc := x.Accepted(t)
				every := num(acc["progress_ms"])
				if every <= 0 {
					t.NA("the node made no progress promise (progress_ms absent): allowed")
				}
				x.SendPayload(t)
				got, start := 0, time.Now()
				for {
					m := x.C.Expect(time.Duration(every)*time.Millisecond*2+time.Second, "progress", "result")
					if m["type"] == "result" {
						x.Result = m
						break
					}
					got++
					t.Check(num(m["elapsed_ms"]) >= 0, "elapsed_ms %v", m["elapsed_ms"])
				}
				ran := time.Since(start)
				if ran < 2*time.Duration(every)*time.Millisecond {
					t.NA("the job ended after %v, too soon to expect progress every %d ms", ran.Round(time.Millisecond), every)
				}
				t.Check(got >= 1, "a job that ran %v with progress_ms %d sent no progress", ran.Round(time.Millisecond), every)
			},
		},
		{
			Name: "exchange/no-progress-unasked",
			Reqs: []string{"JOB-18", "WIRE-14"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("slow"), TimeoutSeconds: 10})
				t.Check(x.Accepted(t)["progress_ms"] == nil || num(x.Answer["progress_ms"]) == 0,
					"progress_ms %v promised to a client that did not ask", x.Answer["progress_ms"])
				x.SendPayload(t)
				m := x.C.Expect(30*time.Second, "result")
				t.Check(m["type"] == "result", "got %v", m["type"])
			},
		},
		{
			Name: "exchange/enumerated-values-sent",
			Reqs: []string{"WIRE-22"},
			Side: SideNode,
			Run: func(t *T) {
				// What the node sends in reason, outcome and code, from the
				// lists of spec-wire §4.3, §4.5 and §4.6.
				for _, c := range []struct {
					module  []byte
					outcome string
				}{{t.Module("exit7"), "exited"}, {t.Module("trap"), "trapped"}} {
					x := t.Run(Job{Module: c.module})
					o, _ := x.Result["outcome"].(string)
					t.Check(slices.Contains(wireOutcomes, o), "WIRE-22: result outcome %q is not one of %v", o, wireOutcomes)
					t.Check(o == c.outcome, "result outcome %q, want %s", o, c.outcome)
				}
				over := t.Record().Limit("max_stdin_bytes") + 1
				x := t.Offer(nil, Job{Module: t.Module("tiny"), Edit: func(o map[string]any) { o["stdin_size"] = over }})
				r, _ := x.Answer["reason"].(string)
				t.Check(x.Answer["type"] == "rejected" && slices.Contains(wireReasons, r), "WIRE-22: stdin over the node's cap got %s, want rejected with one of %v", compact(x.Answer), wireReasons)
				x = t.Offer(nil, Job{Module: t.Module("echo"), Args: []string{"a", "b"}})
				x.Accepted(t)
				_ = x.C.Send(`{"type":"payload","args":["a"]}`)
				m := x.C.Expect(answerWait, "error")
				code, _ := m["code"].(string)
				t.Check(slices.Contains(wireCodes, code), "WIRE-22: error code %q is not one of %v", code, wireCodes)
			},
		},
		{
			Name: "exchange/unknown-error-code",
			Reqs: []string{"WIRE-22", "JOB-13"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: freshModule(t)})
				x.Accepted(t)
				_ = x.C.Send(`{"type":"error","code":"not_a_code","detail":""}`)
				// The message is invalid (not an error the node may act on):
				// the node answers invalid_request, or just ends the stream;
				// any other answer treats the unknown code as a valid one.
				m, err := x.C.Msg(answerWait)
				switch {
				case err != nil:
					t.Check(!isTimeout(err), "WIRE-22: after an error with an unknown code the node neither answered nor ended the stream")
				case m["type"] == "error":
					t.Check(m["code"] == "invalid_request", "WIRE-22: an error with an unknown code was answered with %s, want invalid_request", compact(m))
				default:
					t.Errorf("WIRE-22: an error with an unknown code was answered with %s", compact(m))
				}
				stillServes(t)
			},
		},
	}
}

// The enumerations of spec-wire §4.3 (reason), §4.5 (outcome) and §4.6
// (code).
var (
	wireReasons = []string{"insufficient_resources", "arch_mismatch", "runtime_not_supported", "queue_full", "invalid_request",
		"too_large", "unauthorized", "replayed_nonce"}
	wireOutcomes = []string{"exited", "trapped", "timeout", "memory_limit", "invalid_module", "hash_mismatch"}
	wireCodes    = []string{"invalid_request", "hash_mismatch", "timeout", "internal", "too_large", "protocol"}
)

// freshModule is the tiny module with a random custom section: a hash no
// node has seen, so the node asks for the module frame (have_module false).
func freshModule(t *T) []byte { return append(t.Module("tiny"), uniqueCustomSection()...) }

// uniqueCustomSection is a valid WebAssembly custom section with random
// content, so a module gets a hash no node has seen.
func uniqueCustomSection() []byte {
	name := []byte("conformance")
	payload := append([]byte{byte(len(name))}, name...)
	payload = append(payload, []byte(NewNonce())...)
	return append([]byte{0, byte(len(payload))}, payload...)
}

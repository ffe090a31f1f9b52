package conformance

import (
	"strings"
	"time"
)

// refusal sends body as the first control frame and requires a rejected
// with reason (JOB-3: a node that cannot parse or validate an offer answers
// rejected invalid_request, or too_large), then checks that the node still
// runs an honest job.
func refusal(t *T, body, reason string) {
	c := t.Open(nil, ProtocolJob)
	if err := c.Send(body); err != nil {
		t.Fatalf("send: %v", err)
	}
	m := c.Expect(answerWait, "rejected", "error")
	if m["type"] != "rejected" || m["reason"] != reason {
		t.Errorf("want rejected %s, got %s", reason, compact(m))
	}
	if _, ok := m["detail"].(string); !ok && m["type"] == "rejected" {
		t.Errorf("rejected without a detail string")
	}
	stillServes(t)
}

// stillServes runs one honest tiny job: after any bad input, the node
// serves the next client.
func stillServes(t *T) {
	x := t.Run(Job{Module: t.Module("tiny")})
	t.Check(string(x.Stdout) == "ok\n", "after the bad input, an honest job gave %q", x.Stdout)
}

// offerWith is a valid offer for the tiny module, edited.
func offerWith(t *T, edit func(o map[string]any)) string {
	j := Job{Module: t.Module("tiny"), Edit: edit}
	return Marshal(j.Offer())
}

func manifestEdit(f func(m map[string]any)) func(o map[string]any) {
	return func(o map[string]any) { f(o["manifest"].(map[string]any)) }
}

// offerCases: offers a node must refuse, and the rejection reasons.
func offerCases() []Case {
	type bad struct {
		name   string
		reqs   []string
		body   func(t *T) string
		reason string
	}
	raw := func(s string) func(*T) string { return func(*T) string { return s } }
	edit := func(f func(o map[string]any)) func(*T) string {
		return func(t *T) string { return offerWith(t, f) }
	}
	bads := []bad{
		{"not-json", []string{"WIRE-12", "JOB-3"}, raw(`{"type":"offer",`), "invalid_request"},
		{"not-utf8", []string{"WIRE-11", "WIRE-12"}, raw("{\"type\":\"offer\",\"job_id\":\"\xff\"}"), "invalid_request"},
		{"array", []string{"WIRE-11", "WIRE-12"}, raw(`["offer"]`), "invalid_request"},
		{"trailing-data", []string{"WIRE-11"}, func(t *T) string { return offerWith(t, nil) + ` {}` }, "invalid_request"},
		{"no-type", []string{"WIRE-14"}, edit(func(o map[string]any) { delete(o, "type") }), "invalid_request"},
		{"type-not-string", []string{"WIRE-14"}, edit(func(o map[string]any) { o["type"] = 1 }), "invalid_request"},
		{"type-case", []string{"WIRE-14", "WIRE-15"}, edit(func(o map[string]any) { o["type"] = "Offer" }), "invalid_request"},
		{"type-unknown", []string{"WIRE-14"}, edit(func(o map[string]any) { o["type"] = "submit" }), "invalid_request"},
		{"member-case", []string{"WIRE-15", "WIRE-21"}, edit(func(o map[string]any) { o["JOB_ID"] = o["job_id"]; delete(o, "job_id") }), "invalid_request"},
		{"duplicate-member", []string{"WIRE-13"}, func(t *T) string {
			return strings.Replace(offerWith(t, nil), `"type":"offer"`, `"type":"offer","nonce":"`+NewNonce()+`"`, 1)
		}, "invalid_request"},
		{"duplicate-in-unknown-member", []string{"WIRE-13", "WIRE-16"}, func(t *T) string {
			return strings.Replace(offerWith(t, nil), `"type":"offer"`, `"type":"offer","future":{"x":1,"x":2}`, 1)
		}, "invalid_request"},
		{"duplicate-after-unescape", []string{"WIRE-13"}, func(t *T) string {
			return strings.Replace(offerWith(t, nil), `"type":"offer"`, `"type":"offer","\u006Eonce":"`+NewNonce()+`"`, 1)
		}, "invalid_request"},
		{"null-member", []string{"WIRE-17"}, edit(func(o map[string]any) { o["arch"] = nil }), "invalid_request"},
		{"integer-with-fraction", []string{"WIRE-18"}, func(t *T) string {
			return strings.Replace(offerWith(t, nil), `"args_count":0`, `"args_count":0.0`, 1)
		}, "invalid_request"},
		{"integer-with-exponent", []string{"WIRE-18"}, func(t *T) string {
			return strings.Replace(offerWith(t, nil), `"args_count":0`, `"args_count":0e0`, 1)
		}, "invalid_request"},
		{"integer-as-string", []string{"WIRE-18"}, edit(func(o map[string]any) { o["args_count"] = "0" }), "invalid_request"},
		{"integer-over-64-bits", []string{"WIRE-18"}, func(t *T) string {
			return strings.Replace(offerWith(t, nil), `"stdin_size":0`, `"stdin_size":18446744073709551616`, 1)
		}, "invalid_request"},
		{"boolean-as-string", []string{"WIRE-19"}, edit(func(o map[string]any) { o["deterministic"] = "true" }), "invalid_request"},
		{"boolean-as-number", []string{"WIRE-19"}, edit(func(o map[string]any) { o["require_arch"] = 1 }), "invalid_request"},
		{"job-id-empty", []string{"WIRE-21"}, edit(func(o map[string]any) { o["job_id"] = "" }), "invalid_request"},
		{"job-id-too-long", []string{"WIRE-21"}, edit(func(o map[string]any) { o["job_id"] = strings.Repeat("j", 129) }), "invalid_request"},
		{"job-id-bad-char", []string{"WIRE-21"}, edit(func(o map[string]any) { o["job_id"] = "a/b" }), "invalid_request"},
		{"nonce-uppercase", []string{"WIRE-21", "JOB-15"}, edit(func(o map[string]any) { o["nonce"] = strings.ToUpper(NewNonce()) }), "invalid_request"},
		{"nonce-short", []string{"WIRE-21", "JOB-15"}, edit(func(o map[string]any) { o["nonce"] = NewNonce()[:62] }), "invalid_request"},
		{"required-member-missing", []string{"WIRE-21"}, edit(func(o map[string]any) { delete(o, "stdin_size") }), "invalid_request"},
		{"negative-size", []string{"WIRE-21"}, edit(func(o map[string]any) { o["module_size"] = -1 }), "invalid_request"},
		{"args-count-over-1024", []string{"WIRE-21"}, edit(func(o map[string]any) { o["args_count"] = 1025 }), "invalid_request"},
		{"arch-unknown", []string{"WIRE-23"}, edit(func(o map[string]any) { o["arch"] = "x86-64" }), "invalid_request"},
		{"arch-uppercase", []string{"WIRE-23"}, edit(func(o map[string]any) { o["arch"] = "AMD64" }), "invalid_request"},
		{"require-arch-without-arch", []string{"WIRE-23"}, edit(func(o map[string]any) { o["require_arch"] = true }), "invalid_request"},
		{"seed-without-deterministic", []string{"WIRE-23"}, edit(func(o map[string]any) { o["seed"] = 7 }), "invalid_request"},
		{"manifest-not-object", []string{"WIRE-24"}, edit(func(o map[string]any) { o["manifest"] = "m" }), "invalid_request"},
		{"manifest-version", []string{"WIRE-24", "MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["version"] = "0.2" })), "invalid_request"},
		{"manifest-unknown-member", []string{"WIRE-24", "MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["gpu"] = 1 })), "invalid_request"},
		{"manifest-member-case", []string{"WIRE-24", "MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["CPU_CORES"] = m["cpu_cores"]; delete(m, "cpu_cores") })), "invalid_request"},
		{"manifest-member-missing", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { delete(m, "timeout_seconds") })), "invalid_request"},
		{"manifest-member-null", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["memory_mb"] = nil })), "invalid_request"},
		{"manifest-cores-zero", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["cpu_cores"] = 0 })), "invalid_request"},
		{"manifest-cores-65", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["cpu_cores"] = 65 })), "invalid_request"},
		{"manifest-memory-32769", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["memory_mb"] = 32769 })), "invalid_request"},
		{"manifest-timeout-3601", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["timeout_seconds"] = 3601 })), "invalid_request"},
		{"manifest-hash-uppercase", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["module_hash"] = strings.ToUpper(m["module_hash"].(string)) })), "invalid_request"},
		{"manifest-hash-other-algorithm", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) {
			m["module_hash"] = "sha512:" + strings.TrimPrefix(m["module_hash"].(string), "sha256:")
		})), "invalid_request"},
		{"manifest-wrong-type", []string{"MAN-1"}, edit(manifestEdit(func(m map[string]any) { m["memory_mb"] = "64" })), "invalid_request"},
	}
	var out []Case
	for _, b := range bads {
		out = append(out, Case{
			Name: "offer/refused/" + b.name,
			Reqs: append([]string{"JOB-3"}, b.reqs...),
			Side: SideNode,
			Run:  func(t *T) { refusal(t, b.body(t), b.reason) },
		})
	}
	out = append(out,
		Case{
			Name: "offer/unknown-members-ignored",
			Reqs: []string{"WIRE-16", "WIRE-20"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny"), Edit: func(o map[string]any) {
					o["future_member"] = map[string]any{"nested": []any{1.5, "x", nil}}
				}})
				x.SendPayload(t)
				x.ReadResult(t, time.Minute)
				x.Verify(t)
			},
		},
		Case{
			Name: "offer/optional-members-absent",
			Reqs: []string{"WIRE-20"},
			Side: SideNode,
			Run: func(t *T) {
				// arch, require_arch, deterministic, seed, progress all left out.
				x := t.Run(Job{Module: t.Module("tiny")})
				t.Check(!x.Receipt.Bool("deterministic"), "deterministic defaulted to true")
			},
		},
		Case{
			Name: "offer/arch-alias-accepted",
			Reqs: []string{"WIRE-23", "CAP-5"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Offer(nil, Job{Module: t.Module("tiny"), Arch: "x86_64"})
				t.Check(x.Answer["type"] == "accepted", "x86_64 as a preferred arch: %s", compact(x.Answer))
			},
		},
		Case{
			Name: "offer/module-size-over-cap",
			Reqs: []string{"JOB-3", "WIRE-10"},
			Side: SideNode,
			Run: func(t *T) {
				limit := t.Record().Limit("max_module_bytes")
				refusal(t, offerWith(t, func(o map[string]any) { o["module_size"] = limit + 1 }), "too_large")
			},
		},
		Case{
			Name: "offer/stdin-size-over-cap",
			Reqs: []string{"JOB-3", "WIRE-10"},
			Side: SideNode,
			Run: func(t *T) {
				limit := t.Record().Limit("max_stdin_bytes")
				refusal(t, offerWith(t, func(o map[string]any) { o["stdin_size"] = limit + 1 }), "too_large")
			},
		},
		Case{
			Name: "offer/more-cores-than-offered",
			Reqs: []string{"EXEC-7"},
			Side: SideNode,
			Run: func(t *T) {
				cores := t.Record().Int("cpu_cores")
				if cores >= 64 {
					t.NA("the node offers 64 cores, the manifest's maximum")
				}
				refusal(t, offerWith(t, manifestEdit(func(m map[string]any) { m["cpu_cores"] = cores + 1 })), "insufficient_resources")
			},
		},
		Case{
			Name: "offer/more-memory-than-offered",
			Reqs: []string{"EXEC-7"},
			Side: SideNode,
			Run: func(t *T) {
				mem := t.Record().Int("memory_mb")
				if mem >= 32768 {
					t.NA("the node offers the manifest's maximum memory")
				}
				refusal(t, offerWith(t, manifestEdit(func(m map[string]any) { m["memory_mb"] = mem + 1 })), "insufficient_resources")
			},
		},
		Case{
			Name: "offer/required-arch-mismatch",
			Reqs: []string{"WIRE-23", "CAP-5"},
			Side: SideNode,
			Run: func(t *T) {
				other := "riscv64"
				if t.Record()["arch"] == other {
					other = "s390x"
				}
				refusal(t, offerWith(t, func(o map[string]any) { o["arch"], o["require_arch"] = other, true }), "arch_mismatch")
			},
		},
		Case{
			Name: "offer/replayed-nonce",
			Reqs: []string{"JOB-15"},
			Side: SideNode,
			Run: func(t *T) {
				nonce := NewNonce()
				first := t.Run(Job{Module: t.Module("tiny"), Nonce: nonce})
				_ = first
				// The same nonce again, from another peer and another job id.
				x := t.Offer(nil, Job{Module: t.Module("tiny"), Nonce: nonce})
				t.Check(x.Answer["type"] == "rejected" && x.Answer["reason"] == "replayed_nonce", "a replayed nonce: %s", compact(x.Answer))
			},
		},
		Case{
			Name: "offer/rejected-nonce-not-burned",
			Reqs: []string{"JOB-15"},
			Side: SideNode,
			Run: func(t *T) {
				nonce := NewNonce()
				x := t.Offer(nil, Job{Module: t.Module("tiny"), Nonce: nonce, Edit: func(o map[string]any) { o["require_arch"], o["arch"] = true, "s390x" }})
				if x.Answer["type"] != "rejected" {
					t.NA("the node is s390x")
				}
				y := t.Offer(nil, Job{Module: t.Module("tiny"), Nonce: nonce})
				t.Check(y.Answer["type"] == "accepted", "a nonce of a rejected offer was refused: %s", compact(y.Answer))
			},
		},
		Case{
			Name:      "offer/per-peer-queue-full",
			Reqs:      []string{"JOB-3"},
			Side:      SideNode,
			Exclusive: true,
			Run: func(t *T) {
				per := t.Record().Limit("max_jobs_per_peer")
				if per > 16 {
					t.NA("max_jobs_per_peer %d: too many streams to hold for this case", per)
				}
				h := t.Host()
				for range per {
					x := t.Offer(h, Job{Module: t.Module("tiny")})
					x.Accepted(t) // held: payload never sent
				}
				x := t.Offer(h, Job{Module: t.Module("tiny")})
				t.Check(x.Answer["type"] == "rejected" && x.Answer["reason"] == "queue_full",
					"offer %d from one peer (max_jobs_per_peer %d): %s", per+1, per, compact(x.Answer))
			},
		},
	)
	return out
}

package conformance

import (
	"context"
	"crypto/sha256"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/protocol"
	mh "github.com/multiformats/go-multihash"

	"github.com/phase-protocol/plasm/conformance/ref"
)

// capsCases: the live capability exchange (spec-wire §6) and the record in
// the DHT (SPEC §4).
func capsCases() []Case {
	capsBad := func(name, body, code string, reqs ...string) Case {
		return Case{
			Name: "caps/bad-request/" + name,
			Reqs: append([]string{"CAPS-3"}, reqs...),
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolCaps)
				_ = c.Write(ref.Frame([]byte(body)))
				c.CloseWrite()
				m := c.Expect(answerWait, "error", "caps")
				t.Check(m["type"] == "error" && m["code"] == code, "%s: want error %s, got %s", name, code, compact(m))
				t.Check(c.Ended(5*time.Second), "the node did not close the caps stream")
				t.Record() // still answers
			},
		}
	}
	return []Case{
		{
			Name: "caps/live-record",
			Reqs: []string{"CAPS-1", "CAPS-2", "CAPS-3", "CAPS-4", "CAP-1", "CAP-4", "ID-1"},
			Side: SideNode,
			Run: func(t *T) {
				r := t.Record()
				t.Check(r.Limit("max_concurrent_jobs") >= 1 && r.Limit("max_jobs_per_peer") >= 1, "limits %v", r["limits"])
			},
		},
		{
			Name:      "caps/seq-increases",
			Reqs:      []string{"CAP-2", "CAP-4"},
			Side:      SideNode,
			Exclusive: true,
			Run: func(t *T) {
				r1 := t.Record()
				// A job that runs (the slow module sleeps 2 s) changes the
				// node's load; an accepted job still waiting for its
				// payload need not.
				x := t.Offer(nil, Job{Module: t.Module("slow"), TimeoutSeconds: 10})
				x.Accepted(t)
				x.SendPayload(t)
				// The node republishes when its load changes: poll its
				// live record while the job runs (2 s).
				r2 := t.Record()
				for end := time.Now().Add(1500 * time.Millisecond); Marshal(r1["load"]) == Marshal(r2["load"]) && time.Now().Before(end); {
					time.Sleep(50 * time.Millisecond)
					r2 = t.Record()
				}
				if Marshal(r1["load"]) == Marshal(r2["load"]) {
					t.NA("the live record did not change with the load (served from the DHT copy)")
				}
				t.Check(r2.Int("seq") > r1.Int("seq"), "CAP-2: a changed record kept seq %d (was %d)", r2.Int("seq"), r1.Int("seq"))
			},
		},
		{
			Name: "caps/unknown-member-ignored",
			Reqs: []string{"CAPS-3", "WIRE-16"},
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolCaps)
				_ = c.Send(`{"type":"caps_request","later":{"x":[1.5,null]}}`)
				c.CloseWrite()
				c.Expect(answerWait, "caps")
			},
		},
		capsBad("not-json", `{"type":`, "invalid_request", "WIRE-12"),
		capsBad("duplicate-member", `{"type":"caps_request","type":"caps_request"}`, "invalid_request", "WIRE-13"),
		capsBad("an-offer", `{"type":"payload","args":[]}`, "protocol", "JOB-13"),
		capsBad("unknown-type", `{"type":"capabilities"}`, "invalid_request", "WIRE-14"),
		{
			Name: "caps/oversized-request",
			Reqs: []string{"CAPS-3", "WIRE-6", "WIRE-8"},
			Side: SideNode,
			Run: func(t *T) {
				c := t.Open(nil, ProtocolCaps)
				_ = c.Write(ref.AppendVarint(nil, 1<<20))
				m := c.Expect(answerWait, "error")
				t.Check(m["code"] == "too_large", "a 1 MiB caps request: %s", compact(m))
			},
		},
		{
			Name:  "caps/record-reflects-limits",
			Reqs:  []string{"CAP-4", "EXEC-7"},
			Side:  SideNode,
			Needs: NeedConfig,
			Run: func(t *T) {
				r := t.Record()
				for name, want := range map[string]int64{
					"max_module_bytes": Settings.MaxModuleBytes, "max_stdin_bytes": Settings.MaxStdinBytes,
					"max_memory_mb": int64(Settings.MaxMemoryMB), "max_timeout_seconds": int64(Settings.MaxTimeoutSecs),
					"max_concurrent_jobs": int64(Settings.MaxConcurrent), "max_jobs_per_peer": int64(Settings.MaxPerPeer),
				} {
					t.Check(r.Limit(name) == want, "limits.%s %d, the node runs with %d", name, r.Limit(name), want)
				}
			},
		},
		{
			Name:  "dht/private-protocol",
			Reqs:  []string{"DHT-1"},
			Side:  SideNode,
			Needs: NeedDHT,
			Run: func(t *T) {
				w, err := t.Env().Worker(t.Ctx())
				if err != nil {
					t.Fatalf("%v", err)
				}
				protos, err := w.Host.Peerstore().GetProtocols(t.Env().Target.ID)
				if err != nil {
					t.Fatalf("peerstore: %v", err)
				}
				has := func(p string) bool {
					return slices.ContainsFunc(protos, func(x protocol.ID) bool { return string(x) == p })
				}
				t.Check(has("/phase/kad/1.0.0"), "the target does not speak /phase/kad/1.0.0 (it speaks %v)", protos)
				t.Check(!has("/ipfs/kad/1.0.0"), "the target speaks the public IPFS DHT protocol")
				t.Check(has(ProtocolJob) && has(ProtocolCaps), "the target does not speak %s and %s", ProtocolJob, ProtocolCaps)
			},
		},
		{
			Name:  "dht/record-under-its-key",
			Reqs:  []string{"CAP-2", "CAP-1"},
			Side:  SideNode,
			Needs: NeedDHT,
			Run: func(t *T) {
				w, err := t.Env().Worker(t.Ctx())
				if err != nil {
					t.Fatalf("%v", err)
				}
				id := t.Env().Target.ID.String()
				var raw []byte
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					ctx, cancel := context.WithTimeout(t.Ctx(), 5*time.Second)
					raw, err = w.DHT.GetValue(ctx, "/phase-caps/"+id)
					cancel()
					if err == nil {
						break
					}
					time.Sleep(500 * time.Millisecond) // the record may not be put yet: poll
				}
				if err != nil {
					t.Fatalf("no record under /phase-caps/%s: %v", id, err)
				}
				if _, err := VerifyRecord(raw, id, time.Now()); err != nil {
					t.Errorf("the DHT record does not verify: %v", err)
				}
			},
		},
		{
			Name:  "dht/provider-keys",
			Reqs:  []string{"CAP-3"},
			Side:  SideNode,
			Needs: NeedDHT,
			Run: func(t *T) {
				w, err := t.Env().Worker(t.Ctx())
				if err != nil {
					t.Fatalf("%v", err)
				}
				rec := t.Record()
				keys := []string{"/phase/cap/runtime/wasi_snapshot_preview1", "/phase/cap/arch/" + rec["arch"].(string)}
				for _, k := range keys {
					sum := sha256.Sum256([]byte(k))
					h, _ := mh.Encode(sum[:], mh.SHA2_256)
					c := cid.NewCidV1(cid.Raw, h)
					found := false
					deadline := time.Now().Add(90 * time.Second)
					for !found && time.Now().Before(deadline) {
						ctx, cancel := context.WithTimeout(t.Ctx(), 5*time.Second)
						for p := range w.DHT.FindProvidersAsync(ctx, c, 20) {
							if p.ID == t.Env().Target.ID {
								found = true
							}
						}
						cancel()
						if !found {
							time.Sleep(500 * time.Millisecond) // provider records settle: poll
						}
					}
					t.Check(found, "the target does not provide %s (CID %s)", k, c)
				}
			},
		},
	}
}

package conformance

import "time"

// aliveCases: a node that accepted a job shows it is alive (JOB-20), so a
// client tells a stalled node from a busy one in seconds.
func aliveCases() []Case {
	return []Case{
		{
			Name: "alive/progress-promised-and-kept",
			Reqs: []string{"JOB-20", "JOB-18"},
			Side: SideNode,
			Run: func(t *T) {
				// loop spins until the time limit; every gap between the node's
				// messages must stay within the promise, with a little room for
				// scheduling and the network.
				x := t.Offer(nil, Job{Module: t.Module("loop"), Progress: true, TimeoutSeconds: Settings.MaxTimeoutSecs})
				acc := x.Accepted(t)
				every := num(acc["progress_ms"])
				t.Check(every >= 1 && every <= 5000, "JOB-20: progress_ms %v in answer to an offer that asked, want 1 to 5000", acc["progress_ms"])
				if every < 1 || every > 5000 {
					return
				}
				promise := time.Duration(every) * time.Millisecond
				slack := promise/2 + 500*time.Millisecond
				x.SendPayload(t)
				got, worst, start, last := 0, time.Duration(0), time.Now(), time.Now()
				for {
					m := x.C.Expect(promise+slack+time.Second, "progress", "result")
					gap := time.Since(last)
					last = time.Now()
					if m["type"] == "result" {
						x.Result = m
						break
					}
					got++
					worst = max(worst, gap)
				}
				ran := time.Since(start)
				if ran < 2*promise {
					t.NA("the job ended after %v, too soon to expect progress every %v", ran.Round(time.Millisecond), promise)
				}
				t.Check(got >= 1, "JOB-20: a job that ran %v with progress_ms %d sent no progress", ran.Round(time.Millisecond), every)
				t.Check(worst <= promise+slack, "JOB-20: %v between progress messages, promised %v", worst.Round(time.Millisecond), promise)
			},
		},
	}
}

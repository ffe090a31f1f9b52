package scenarios

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/api"
)

// batchOutcome is what became of every job of a batch: each one either
// verified (and on which node) or a clear error; none may be missing.
type batchOutcome struct {
	verified map[string]int // node → jobs
	failed   []string       // the client's error for each job no node ran
}

// runBatch submits n slow jobs at once and waits for every answer.
func runBatch(s *Scenario, client *Ctr, n int, mod []byte) batchOutcome {
	s.t.Helper()
	type answer struct {
		res JobResult
		err error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Submit(s.ctx, client, api.JobRequest{Module: mod, MemoryMB: 16, TimeoutSeconds: 20, Attempts: 4})
			answers[i] = answer{res, err}
		}()
	}
	wg.Wait()
	out := batchOutcome{verified: map[string]int{}}
	for i, a := range answers {
		require.NoError(s.t, a.err, "job %d: no answer from the client API (a lost job)", i)
		if a.res.Err != nil {
			require.NotEmpty(s.t, a.res.Err.Error, "job %d failed without a reason", i)
			out.failed = append(out.failed, a.res.Err.Error)
			continue
		}
		require.NoError(s.t, checkJob(a.res, "done\n"), "job %d", i)
		out.verified[a.res.Resp.Node]++
	}
	return out
}

// TestFaults: a node killed while it runs a job, and a node cut off by a
// partition during a batch. Every job ends verified on another node or
// with a clear error, none is lost, and after the partition heals the
// nodes find each other again.
func TestFaults(t *testing.T) {
	s := newScenario(t, "faults")
	nw := s.Network("faults", "")
	boot, nodes := startLAN(s, nw, imageNodeAMD64, "amd64", 3)
	require.Len(t, nodes, 3)
	client := s.StartNode(NodeSpec{Name: "client", Image: imageClientAMD64, Arch: "amd64", Networks: []string{nw},
		Bootstrap: []string{boot.Addr(nw)}, Config: map[string]any{"dht": map[string]any{"client_mode": true}}})
	_, took := s.WaitFound(client, "limit=20", 4, 90*time.Second)
	s.row.note("discovery of 4 nodes %s", ms(took))
	slow := module(t, "slow.wasm") // sleeps 2s, prints done

	// 1. Kill a node mid-job: start a batch, and as soon as one of the
	// three non-bootstrap nodes has accepted a job, SIGKILL it.
	byPeer := map[string]*Ctr{}
	for _, n := range nodes {
		byPeer[n.Peer.String()] = n
	}
	done := make(chan batchOutcome, 1)
	began := time.Now()
	go func() { done <- runBatch(s, client, 6, slow) }()
	var victim *Ctr
	for victim == nil && time.Since(began) < 60*time.Second {
		for _, n := range nodes {
			if strings.Contains(s.Logs(n), `"event":"job_accepted"`) {
				victim = n
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NotNil(t, victim, "no node accepted a job within 60s")
	s.logf("killing %s (%s) while it runs a job", victim.Name, victim.Peer)
	require.NoError(t, s.Kill(victim))
	var out batchOutcome
	select {
	case out = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the batch did not finish within 3 minutes of the kill: jobs lost")
	}
	s.logf("kill batch: %v verified by node, %d clear errors, in %v", out.verified, len(out.failed), time.Since(began))
	require.Zero(t, out.verified[victim.Peer.String()], "a job is reported verified on the killed node")
	total := len(out.failed)
	for _, n := range out.verified {
		total += n
	}
	require.Equal(t, 6, total)
	require.NotEmpty(t, out.verified, "no job survived the kill")
	s.row.note("kill mid-job: %d/6 verified elsewhere, %d clear errors, %s", 6-len(out.failed), len(out.failed), ms(time.Since(began)))

	// 2. Partition one surviving node (all its packets dropped in its
	// namespace) during a batch, then heal.
	var cut *Ctr
	for _, n := range nodes {
		if n != victim {
			cut = n
			break
		}
	}
	began = time.Now()
	go func() { done <- runBatch(s, client, 8, slow) }()
	// Cut it once it has accepted a job of this batch (or after 20s).
	before := strings.Count(s.Logs(cut), `"event":"job_accepted"`)
	for time.Since(began) < 20*time.Second && strings.Count(s.Logs(cut), `"event":"job_accepted"`) == before {
		time.Sleep(100 * time.Millisecond)
	}
	s.logf("partitioning %s", cut.Name)
	s.Partition(cut, true)
	select {
	case out = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("the batch did not finish within 4 minutes of the partition: jobs lost")
	}
	s.logf("partition batch: %v verified by node, %d clear errors (%v), in %v", out.verified, len(out.failed), out.failed, time.Since(began))
	total = len(out.failed)
	for _, n := range out.verified {
		total += n
	}
	require.Equal(t, 8, total)
	s.row.note("partition mid-batch: %d/8 verified, %d clear errors, %s", 8-len(out.failed), len(out.failed), ms(time.Since(began)))

	// Heal; both sides find each other again through the DHT.
	healed := time.Now()
	s.Partition(cut, false)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		found, err := s.Find(client, "limit=20")
		seen := false
		for _, f := range found {
			if f.PeerID == cut.Peer.String() && f.Live {
				seen = true
			}
		}
		fromCut, err2 := s.Find(cut, "limit=20")
		if err == nil && err2 == nil && seen && len(fromCut) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after healing, the client sees the cut node: %v (%v); the cut node finds %d nodes (%v)", seen, err, len(fromCut), err2)
		}
		time.Sleep(time.Second)
	}
	s.logf("after healing, %s and the client found each other in %v", cut.Name, time.Since(healed))
	s.row.note("re-found after heal %s", ms(time.Since(healed)))
	// And a job runs again after healing.
	res, err := s.Submit(s.ctx, client, api.JobRequest{Module: slow, MemoryMB: 16, TimeoutSeconds: 20, Attempts: 3})
	require.NoError(t, err)
	require.NoError(t, checkJob(res, "done\n"))
}

// Kill stops a container at once (SIGKILL), as a crash would.
func (s *Scenario) Kill(c *Ctr) error {
	s.Run("docker", "kill", "--signal", "KILL", c.C.GetContainerID())
	return nil
}

// Partition drops (on) or restores (off) every packet of c but loopback,
// in its own network namespace, so its address stays the same.
func (s *Scenario) Partition(c *Ctr, on bool) {
	s.t.Helper()
	if on {
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			s.InNetNS(c, "iptables", "-A", chain, "!", fmt.Sprintf("-%s", map[string]string{"INPUT": "i", "OUTPUT": "o"}[chain]), "lo", "-j", "DROP")
		}
		return
	}
	s.InNetNS(c, "iptables", "-F", "INPUT")
	s.InNetNS(c, "iptables", "-F", "OUTPUT")
}

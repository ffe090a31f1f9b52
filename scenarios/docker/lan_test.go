package scenarios

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/phase"
)

// startLAN starts a bootstrap node and n nodes of one image on one network.
func startLAN(s *Scenario, nw, image, arch string, n int) (boot *Ctr, nodes []*Ctr) {
	boot = s.StartNode(NodeSpec{Name: "boot", Image: image, Arch: arch, Networks: []string{nw}})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.StartNode(NodeSpec{Name: fmt.Sprintf("node%d", i+1), Image: image, Arch: arch,
				Networks: []string{nw}, Bootstrap: []string{boot.Addr(nw)}})
			mu.Lock()
			nodes = append(nodes, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return boot, nodes
}

// TestLAN: a bootstrap node and five nodes on one network; a client
// discovers them through the DHT and runs 20 jobs, every receipt verified
// here against the node that signed it.
func TestLAN(t *testing.T) {
	s := newScenario(t, "lan")
	nw := s.Network("lan", "")
	boot, nodes := startLAN(s, nw, imageNodeAMD64, "amd64", 5)
	require.Len(t, nodes, 5)
	client := s.StartNode(NodeSpec{Name: "client", Image: imageClientAMD64, Arch: "amd64", Networks: []string{nw},
		Bootstrap: []string{boot.Addr(nw)}, Config: map[string]any{"dht": map[string]any{"client_mode": true}}})

	// Discovery: all six job-running nodes (the bootstrap node runs jobs
	// too) are found through their capability records.
	found, took := s.WaitFound(client, "limit=20", 6, 90*time.Second)
	s.logf("discovered %d nodes in %v", len(found), took)
	s.row.note("discovery of 6 nodes %s", ms(took))

	hello := module(t, "hello.wasm")
	var (
		mu        sync.Mutex
		latencies []time.Duration
		byNode    = map[string]int{}
		first     time.Duration
	)
	began := time.Now()
	// The first job alone (time to first job), then 19 four at a time.
	runOne := func(i int) error {
		word := fmt.Sprintf("job-%02d-plasm", i)
		res, err := s.Submit(s.ctx, client, api.JobRequest{Module: hello, Args: []string{word}, MemoryMB: 32, TimeoutSeconds: 30, Attempts: 3})
		if err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
		if err := checkJob(res, reverse(word)+"\n"); err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
		mu.Lock()
		latencies = append(latencies, res.Latency)
		byNode[res.Resp.Node]++
		mu.Unlock()
		return nil
	}
	require.NoError(t, runOne(0))
	first = time.Since(began)
	errs := make(chan error, 20)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := 1; i < 20; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- runOne(i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, latencies, 20)
	p50, p95 := percentiles(latencies)
	s.logf("20 jobs verified in %v on %d nodes (first %v, p50 %v, p95 %v): %v", time.Since(began), len(byNode), first, p50, p95, byNode)
	s.row.note("first job %s", ms(first))
	s.row.note("20 jobs verified, p50 %s p95 %s, on %d nodes", ms(p50), ms(p95), len(byNode))
	known := map[string]bool{boot.Peer.String(): true}
	for _, n := range nodes {
		known[n.Peer.String()] = true
	}
	for id := range byNode {
		require.True(t, known[id], "job ran on %s, not a node of this scenario", id)
	}
}

// checkJob requires a job that exited 0 with want on stdout and a receipt
// that verifies.
func checkJob(res JobResult, want string) error {
	return checkJobOut(res, func(got string) bool { return got == want }, want)
}

// checkJobEnds is checkJob for output that must end with want (echo.wasm
// prints argv[0], which is the node's to choose, first).
func checkJobEnds(res JobResult, want string) error {
	return checkJobOut(res, func(got string) bool { return strings.HasSuffix(got, want) }, "…"+want)
}

func checkJobOut(res JobResult, ok func(string) bool, want string) error {
	if res.Err != nil {
		return fmt.Errorf("no node ran it: %s %+v", res.Err.Error, res.Err.Attempts)
	}
	if res.Resp.Outcome != phase.OutcomeExited || res.Resp.ExitCode != 0 {
		return fmt.Errorf("outcome %s exit %d (%s)", res.Resp.Outcome, res.Resp.ExitCode, res.Resp.Detail)
	}
	if got := string(res.Resp.StdoutBase64); !ok(got) {
		return fmt.Errorf("stdout %q, want %q", got, want)
	}
	if err := Verify(res.Resp); err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	return nil
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func percentiles(d []time.Duration) (p50, p95 time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[min(len(s)-1, len(s)*95/100)]
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/api"
)

// TestMain lets the test binary stand in for plasmd in child processes,
// so the daemon tests run real processes without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("PLASMD_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is one `plasmd start` process.
type daemon struct {
	cmd  *exec.Cmd
	api  string
	peer string
	addr string // libp2p TCP multiaddr with /p2p/
	logs *lockedBuffer
	done chan struct{}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startDaemon(t *testing.T, bootstrap ...string) *daemon {
	t.Helper()
	dir := dataDir(t)
	code, out, stderr := runCLI(t, "", "init", "--json", "--data-dir", dir)
	require.Equal(t, 0, code, stderr)
	var id struct {
		PeerID string `json:"peer_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &id))
	port, apiPort := freeTCPPort(t), freeTCPPort(t)
	d := &daemon{
		api:  fmt.Sprintf("127.0.0.1:%d", apiPort),
		peer: id.PeerID,
		addr: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id.PeerID),
		logs: &lockedBuffer{},
		done: make(chan struct{}),
	}
	args := []string{"start", "--data-dir", dir, "--api", d.api,
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port),
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	d.cmd = exec.Command(os.Args[0], args...)
	d.cmd.Env = append(os.Environ(), "PLASMD_TEST_AS_MAIN=1")
	d.cmd.Stderr = d.logs
	require.NoError(t, d.cmd.Start())
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("logs of %s:\n%s", d.peer, d.logs.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + d.api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "daemon API up")
	return d
}

// findPeers asks a daemon's API for capable peers.
func findPeers(t *testing.T, d *daemon) []string {
	var found []api.FoundInfo
	if _, err := apiGet(context.Background(), d.api, "/v1/find", &found); err != nil {
		return nil
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, f.PeerID)
	}
	return ids
}

func TestThreeDaemonsFindEachOtherAndRunJobs(t *testing.T) {
	d1 := startDaemon(t)
	d2 := startDaemon(t, d1.addr)
	d3 := startDaemon(t, d1.addr)
	all := map[string]*daemon{d2.peer: d2, d3.peer: d3}

	require.Eventually(t, func() bool {
		found := findPeers(t, d1)
		return len(found) == 2 && all[found[0]] != nil && all[found[1]] != nil
	}, 60*time.Second, 200*time.Millisecond, "d1 finds d2 and d3 through the DHT")

	code, out, stderr := runCLI(t, "", "peers", "--api", d1.api)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "2 peers")
	assert.Contains(t, out, d2.peer)
	assert.Contains(t, out, d3.peer)
	code, out, _ = runCLI(t, "", "status", "--api", d2.api)
	require.Equal(t, 0, code)
	assert.Contains(t, out, d2.peer)
	assert.Contains(t, out, "wazero")

	// A job crosses the network and comes back with a verified receipt.
	rcPath := filepath.Join(t.TempDir(), "receipt.json")
	code, out, stderr = runCLI(t, "", "submit", "--api", d1.api, "--receipt", rcPath, testwasm.Path(t, testwasm.Hello), "--", "Hello, World")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "dlroW ,olleH\n", out)
	assert.Contains(t, stderr, "receipt verified")
	rc, err := os.ReadFile(rcPath)
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(rc, &fields))
	ranOn := fields["node_peer_id"].(string)
	require.NotNil(t, all[ranOn], "ran on d2 or d3, not on the submitting node")
	code, out, _ = runCLI(t, "", "verify", "--peer", ranOn, rcPath)
	assert.Equal(t, 0, code, out)

	// The same through a temporary client node that bootstraps itself.
	code, out, stderr = runCLI(t, "", "submit", "--bootstrap", d1.addr, testwasm.Path(t, testwasm.Hello), "--", "abc")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "cba\n", out)

	// Kill the node that runs a slow job: the job finishes on the other.
	type result struct {
		code        int
		out, stderr string
	}
	res := make(chan result, 1)
	go func() {
		code, out, stderr := runCLI(t, "", "submit", "--api", d1.api, "--json", "--timeout", "20", testwasm.Path(t, testwasm.Slow))
		res <- result{code, out, stderr}
	}()
	var victim *daemon
	require.Eventually(t, func() bool {
		for _, d := range all {
			if running(d.logs.String()) {
				victim = d
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "some node runs the slow job")
	require.NoError(t, victim.cmd.Process.Kill())
	var r result
	select {
	case r = <-res:
	case <-time.After(60 * time.Second):
		t.Fatal("submit did not finish after its node was killed")
	}
	require.Equal(t, 0, r.code, r.stderr)
	var resp api.JobResponse
	require.NoError(t, json.Unmarshal([]byte(r.out), &resp))
	require.NotNil(t, resp.Stdout)
	assert.Equal(t, "done\n", *resp.Stdout)
	assert.NotEqual(t, victim.peer, resp.Node, "the result came from the surviving node")
	assert.GreaterOrEqual(t, len(resp.Attempts), 2, "the failed attempt is listed")
}

// running reports whether a node's log shows a job accepted and not
// aborted (the losers of a fan-out offer are aborted at once).
func running(logs string) bool {
	accepted := map[string]bool{}
	for _, line := range strings.Split(logs, "\n") {
		var e struct {
			Event string `json:"event"`
			JobID string `json:"job_id"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e.Event {
		case "job_accepted":
			accepted[e.JobID] = true
		case "job_aborted", "job_finished", "job_failed":
			delete(accepted, e.JobID)
		}
	}
	return len(accepted) > 0
}

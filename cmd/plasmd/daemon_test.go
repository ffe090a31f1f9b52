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
	"github.com/phase-protocol/plasm/node/phase"
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
	// The client offers to two nodes and withdraws from the one that
	// accepted second, so a node counts as running the job once it has
	// held it for half a second (the job sleeps 2 s). Only the slow job
	// counts: an offer of an earlier job that was withdrawn may not have
	// logged its end yet.
	slowHash := phase.HashBytes(testwasm.Bytes(t, testwasm.Slow))
	var victim *daemon
	since := map[*daemon]time.Time{}
	require.Eventually(t, func() bool {
		for _, d := range all {
			if !running(d.logs.String(), slowHash) {
				delete(since, d)
				continue
			}
			if _, ok := since[d]; !ok {
				since[d] = time.Now()
			}
			if time.Since(since[d]) >= 500*time.Millisecond {
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

// running reports whether a node's log shows a job of module hash
// accepted and not ended (the losers of a fan-out offer are aborted).
func running(logs, hash string) bool {
	accepted := map[string]bool{}
	for _, line := range strings.Split(logs, "\n") {
		var e struct {
			Event      string `json:"event"`
			JobID      string `json:"job_id"`
			ModuleHash string `json:"module_hash"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e.Event {
		case "job_accepted":
			if e.ModuleHash == hash {
				accepted[e.JobID] = true
			}
		case "job_aborted", "job_finished", "job_failed", "job_error":
			delete(accepted, e.JobID)
		}
	}
	return len(accepted) > 0
}

// A daemon whose data directory holds an API token refuses API commands
// without it; submit and status send it from --token-file or
// $PLASMD_API_TOKEN_FILE.
func TestAPITokenDaemon(t *testing.T) {
	dir := dataDir(t)
	code, out, stderr := runCLI(t, "", "init", "--json", "--api-token", "--data-dir", dir)
	require.Equal(t, 0, code, stderr)
	var ini struct {
		TokenFile string `json:"api_token_file"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ini))
	require.Equal(t, filepath.Join(dir, api.TokenFile), ini.TokenFile)
	st, err := os.Stat(ini.TokenFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	apiAddr := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))
	logs := &lockedBuffer{}
	cmd := exec.Command(os.Args[0], "start", "--data-dir", dir, "--api", apiAddr, "--listen", "/ip4/127.0.0.1/tcp/0")
	cmd.Env = append(os.Environ(), "PLASMD_TEST_AS_MAIN=1")
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + apiAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "daemon API up (/healthz needs no token)")
	assert.Contains(t, logs.String(), `"token":true`)

	t.Setenv("PLASMD_DATA_DIR", t.TempDir()) // no token in the default place
	hello := testwasm.Path(t, testwasm.Hello)
	code, _, stderr = runCLI(t, "", "submit", "--api", apiAddr, hello)
	assert.Equal(t, exitHarness, code)
	assert.Contains(t, stderr, "401")
	assert.Contains(t, stderr, "token")
	code, _, stderr = runCLI(t, "", "status", "--api", apiAddr)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "401")

	// With the token the job reaches the network (no other node: 502).
	code, _, stderr = runCLI(t, "", "submit", "--api", apiAddr, "--token-file", ini.TokenFile, hello)
	assert.Equal(t, exitFailed, code, stderr)
	assert.NotContains(t, stderr, "401")
	t.Setenv("PLASMD_API_TOKEN_FILE", ini.TokenFile)
	code, out, stderr = runCLI(t, "", "status", "--api", apiAddr)
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "wazero")
	code, _, stderr = runCLI(t, "", "submit", "--api", apiAddr, "--token-file", filepath.Join(dir, "nope"), hello)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--token-file")
}

// A token file others may read, or a configured one that is missing,
// stops the daemon before it starts, naming the file.
func TestStartRefusesBadTokenFile(t *testing.T) {
	dir := dataDir(t)
	code, _, stderr := runCLI(t, "", "init", "--api-token", "--data-dir", dir)
	require.Equal(t, 0, code, stderr)
	tokenFile := filepath.Join(dir, api.TokenFile)
	require.NoError(t, os.Chmod(tokenFile, 0o644))
	args := []string{"start", "--data-dir", dir, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"}
	code, _, stderr = runCLI(t, "", args...)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, tokenFile)
	assert.Contains(t, stderr, "mode 0644")

	cfgFile := filepath.Join(t.TempDir(), "plasmd.json")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`{"api_access":{"token_file":"elsewhere.token"}}`), 0o600))
	code, _, stderr = runCLI(t, "", append(args, "--config", cfgFile)...)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, filepath.Join(dir, "elsewhere.token"))

	require.NoError(t, os.WriteFile(cfgFile, []byte(`{"api_access":{"allowed_origins":["http://Evil.example/path"]}}`), 0o600))
	code, _, stderr = runCLI(t, "", append(args, "--config", cfgFile)...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "api_access.allowed_origins[0]")
}

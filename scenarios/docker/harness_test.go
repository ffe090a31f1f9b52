package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/moby/moby/api/types/container"
	dnetwork "github.com/moby/moby/api/types/network"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/receipt"
)

// The images docker/build.sh makes; every scenario reuses them.
const (
	imageNodeAMD64   = "plasm-scenario/node:amd64"
	imageNodeARM64   = "plasm-scenario/node:arm64"
	imageClientAMD64 = "plasm-scenario/client:amd64"
	imageClientARM64 = "plasm-scenario/client:arm64"
	imageRouter      = "plasm-scenario/router:latest"
)

// Readiness deadlines: arm64 runs under qemu and starts several times
// slower, more so on a loaded machine.
const (
	readyAMD64 = 120 * time.Second
	readyARM64 = 240 * time.Second
)

// Scenario is one scenario's Docker world: its networks and containers,
// removed when the test ends, with every container's log printed first
// when it failed.
type Scenario struct {
	t     *testing.T
	ctx   context.Context
	name  string
	start time.Time
	ctrs  []*Ctr
	nets  []*testcontainers.DockerNetwork
	row   *summaryRow
}

// Ctr is one running container.
type Ctr struct {
	Name string
	Arch string
	C    testcontainers.Container
	IPs  map[string]string // network name → address
	// Networks in the order given (the first is where the API is reached).
	Networks []string
	Peer     peer.ID // node identity, from its node_started log line
	API      string  // http://ip:4748 when reachable from the host
}

func newScenario(t *testing.T, name string) *Scenario {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	s := &Scenario{t: t, ctx: ctx, name: name, start: time.Now(), row: summary.add(name)}
	t.Cleanup(func() {
		s.row.wall = time.Since(s.start)
		s.row.pass = !t.Failed()
		if t.Failed() {
			s.dumpLogs()
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		for i := len(s.ctrs) - 1; i >= 0; i-- {
			timeout := time.Duration(0)
			_ = s.ctrs[i].C.Stop(cctx, &timeout)
			if err := s.ctrs[i].C.Terminate(cctx); err != nil {
				t.Logf("removing %s: %v", s.ctrs[i].Name, err)
			}
		}
		for _, nw := range s.nets {
			if err := nw.Remove(cctx); err != nil {
				t.Logf("removing network %s: %v", nw.Name, err)
			}
		}
		cancel()
	})
	return s
}

// logf logs with the time since the scenario began.
func (s *Scenario) logf(format string, a ...any) {
	s.t.Helper()
	s.t.Logf("[%6.1fs] %s", time.Since(s.start).Seconds(), fmt.Sprintf(format, a...))
}

// Network makes a bridge network of the scenario's own, removed at the
// end. A subnet ("11.77.1.0/24") gives it fixed addresses; empty lets
// Docker choose.
func (s *Scenario) Network(suffix, subnet string) string {
	s.t.Helper()
	opts := []tcnetwork.NetworkCustomizer{tcnetwork.WithLabels(map[string]string{"plasm.scenario": s.name})}
	if subnet != "" {
		p := netip.MustParsePrefix(subnet)
		opts = append(opts, tcnetwork.WithIPAM(&dnetwork.IPAM{Config: []dnetwork.IPAMConfig{{Subnet: p, Gateway: p.Addr().Next()}}}))
	}
	nw, err := tcnetwork.New(s.ctx, opts...)
	require.NoError(s.t, err, "creating network %s", suffix)
	s.nets = append(s.nets, nw)
	return nw.Name
}

// Subnet is the CIDR Docker gave a network.
func (s *Scenario) Subnet(nw string) string {
	s.t.Helper()
	out := strings.TrimSpace(s.Run("docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", nw))
	p, err := netip.ParsePrefix(strings.Fields(out + " -")[0])
	require.NoError(s.t, err, "subnet of network %s: %q", nw, out)
	return p.String()
}

// NodeSpec says how to start one plasmd container.
type NodeSpec struct {
	Name      string
	Image     string
	Arch      string
	Networks  []string
	Config    map[string]any // merged over baseConfig
	Bootstrap []string
	// ReadyLog is the log event (regexp) that means ready; default
	// bootstrap_ok or bootstrap_skipped.
	ReadyLog string
	Timeout  time.Duration
	// Sysctls and Privileged serve the router.
	Sysctls map[string]string
	Cmd     []string
	// NetNS, when set, runs the container in that container's network
	// namespace (its routes already set) instead of on Networks.
	NetNS *Ctr
	// Env is the container's environment beside the image's (e.g.
	// GOLOG_LOG_LEVEL for libp2p's own debug logs).
	Env map[string]string
}

// baseConfig is what every scenario node starts from: IPv4 only (the
// Docker networks have no IPv6), fast bootstrap retries and record
// republishing so rediscovery after a fault takes seconds, not minutes.
func baseConfig() map[string]any {
	return map[string]any{
		"data_dir": "/data",
		"listen":   []string{"/ip4/0.0.0.0/udp/4747/quic-v1", "/ip4/0.0.0.0/tcp/4747"},
		"api":      "0.0.0.0:4748",
		"dht":      map[string]any{"bootstrap_retry_min": "500ms", "bootstrap_retry_max": "5s"},
		"caps":     map[string]any{"republish_interval": "5s", "ttl": "2m"},
		"jobs":     map[string]any{"max_concurrent": 4, "max_per_peer": 4},
		"log":      map[string]any{"level": "info", "format": "json"},
	}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sub, ok := v.(map[string]any); ok {
			if d, ok := dst[k].(map[string]any); ok {
				merge(d, sub)
				continue
			}
		}
		dst[k] = v
	}
}

// StartNode starts a container and waits until it is ready.
func (s *Scenario) StartNode(spec NodeSpec) *Ctr {
	s.t.Helper()
	if spec.Timeout == 0 {
		spec.Timeout = readyAMD64
		if spec.Arch == "arm64" {
			spec.Timeout = readyARM64
		}
	}
	if spec.ReadyLog == "" {
		spec.ReadyLog = `"event":"(bootstrap_ok|bootstrap_skipped)"`
	}
	name := fmt.Sprintf("plasm-%s-%s-%d", s.name, spec.Name, time.Now().UnixNano()%1e6)
	req := testcontainers.ContainerRequest{
		Name:       name,
		Image:      spec.Image,
		Networks:   spec.Networks,
		Labels:     map[string]string{"plasm.scenario": s.name},
		Env:        spec.Env,
		WaitingFor: wait.ForLog(spec.ReadyLog).AsRegexp().WithStartupTimeout(spec.Timeout).WithPollInterval(200 * time.Millisecond),
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.Sysctls = spec.Sysctls
			if spec.NetNS != nil {
				hc.NetworkMode = container.NetworkMode("container:" + spec.NetNS.C.GetContainerID())
			}
			if spec.Image == imageRouter {
				hc.CapAdd = []string{"NET_ADMIN"}
			}
		},
	}
	if spec.Cmd != nil {
		req.Cmd = spec.Cmd
	} else {
		cfg := baseConfig()
		merge(cfg, spec.Config)
		if len(spec.Bootstrap) > 0 {
			cfg["bootstrap"] = spec.Bootstrap
		}
		b, err := json.MarshalIndent(cfg, "", "  ")
		require.NoError(s.t, err)
		req.Files = []testcontainers.ContainerFile{{Reader: bytes.NewReader(b), ContainerFilePath: "/etc/plasm/node.json", FileMode: 0o644}}
		req.Cmd = []string{"start", "--config", "/etc/plasm/node.json"}
	}
	began := time.Now()
	c, err := testcontainers.GenericContainer(s.ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	ctr := &Ctr{Name: spec.Name, Arch: spec.Arch, C: c, IPs: map[string]string{}, Networks: spec.Networks}
	if c != nil {
		s.ctrs = append(s.ctrs, ctr)
	}
	require.NoError(s.t, err, "%s (%s) not ready within %v", spec.Name, spec.Image, spec.Timeout)
	info, err := c.Inspect(s.ctx)
	require.NoError(s.t, err)
	for nw, ep := range info.NetworkSettings.Networks {
		if ep.IPAddress.IsValid() {
			ctr.IPs[nw] = ep.IPAddress.String()
		}
	}
	if spec.NetNS != nil {
		ctr.IPs = spec.NetNS.IPs
		spec.Networks = spec.NetNS.Networks
	}
	if spec.Cmd == nil {
		started := s.findLog(ctr, `"event":"node_started"`)
		var line struct {
			Peer string `json:"peer"`
		}
		require.NoError(s.t, json.Unmarshal([]byte(started), &line), "node_started line of %s", spec.Name)
		ctr.Peer, err = peer.Decode(line.Peer)
		require.NoError(s.t, err, "peer id of %s", spec.Name)
		ctr.API = "http://" + ctr.IPs[spec.Networks[0]] + ":4748"
	}
	s.logf("%s ready in %.1fs (%s, %v)", spec.Name, time.Since(began).Seconds(), spec.Image, ctr.IPs)
	return ctr
}

// Addr is the node's TCP multiaddr on a network, with its peer id.
func (c *Ctr) Addr(network string) string {
	return fmt.Sprintf("/ip4/%s/tcp/4747/p2p/%s", c.IPs[network], c.Peer)
}

// Logs returns the container's whole log.
func (s *Scenario) Logs(c *Ctr) string {
	rc, err := c.C.Logs(context.Background())
	if err != nil {
		return fmt.Sprintf("(logs unavailable: %v)", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// findLog returns the first log line matching re.
func (s *Scenario) findLog(c *Ctr, re string) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	sc := bufio.NewScanner(strings.NewReader(s.Logs(c)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rx.MatchString(sc.Text()) {
			return sc.Text()
		}
	}
	s.t.Fatalf("%s: no log line matches %s", c.Name, re)
	return ""
}

// WaitLog waits until a log line of c matches re, or fails after limit.
func (s *Scenario) WaitLog(c *Ctr, re string, limit time.Duration) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(limit)
	for {
		for _, l := range strings.Split(s.Logs(c), "\n") {
			if rx.MatchString(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no log line matched %s within %v", c.Name, re, limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *Scenario) dumpLogs() {
	for _, c := range s.ctrs {
		logs := s.Logs(c)
		if len(logs) > 60000 {
			logs = "…" + logs[len(logs)-60000:]
		}
		s.t.Logf("===== logs of %s (%s) =====\n%s", c.Name, c.Arch, logs)
	}
}

// Run executes a command on the host (nsenter, iptables) and fails with
// its output when it fails.
func (s *Scenario) Run(name string, args ...string) string {
	s.t.Helper()
	out, err := exec.CommandContext(s.ctx, name, args...).CombinedOutput()
	require.NoError(s.t, err, "%s %s: %s", name, strings.Join(args, " "), out)
	return string(out)
}

// PID is the container's main process on the host, for nsenter.
func (s *Scenario) PID(c *Ctr) int {
	s.t.Helper()
	info, err := c.C.Inspect(s.ctx)
	require.NoError(s.t, err)
	return info.State.Pid
}

// InNetNS runs a command in c's network namespace.
func (s *Scenario) InNetNS(c *Ctr, args ...string) string {
	s.t.Helper()
	return s.Run("nsenter", append([]string{"-t", fmt.Sprint(s.PID(c)), "-n"}, args...)...)
}

var httpClient = &http.Client{Timeout: 5 * time.Minute}

// Find asks a node's API for capable nodes.
func (s *Scenario) Find(c *Ctr, query string) ([]api.FoundInfo, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.API+"/v1/find?"+query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("find: %s: %s", resp.Status, b)
	}
	var out []api.FoundInfo
	return out, json.Unmarshal(b, &out)
}

// WaitFound polls Find until at least want nodes answer, and returns how
// long that took.
func (s *Scenario) WaitFound(c *Ctr, query string, want int, limit time.Duration) ([]api.FoundInfo, time.Duration) {
	s.t.Helper()
	began := time.Now()
	var last []api.FoundInfo
	var lastErr error
	for time.Since(began) < limit {
		last, lastErr = s.Find(c, query)
		if lastErr == nil && len(last) >= want {
			return last, time.Since(began)
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.t.Fatalf("%s found %d nodes (want %d) within %v; last error: %v", c.Name, len(last), want, limit, lastErr)
	return nil, 0
}

// JobResult is one job's outcome as the scenario sees it.
type JobResult struct {
	Resp    *api.JobResponse
	Err     *api.JobError
	Latency time.Duration
}

// Submit posts a job to a client's API. An HTTP or transport failure is
// returned as an error; a job no node could run comes back in Err.
func (s *Scenario) Submit(ctx context.Context, c *Ctr, req api.JobRequest) (JobResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return JobResult{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.API+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return JobResult{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	began := time.Now()
	resp, err := httpClient.Do(hreq)
	if err != nil {
		return JobResult{}, fmt.Errorf("POST /v1/jobs on %s: %w", c.Name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	res := JobResult{Latency: time.Since(began)}
	if err != nil {
		return res, fmt.Errorf("reading job response: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		res.Resp = new(api.JobResponse)
		return res, json.Unmarshal(raw, res.Resp)
	case http.StatusBadGateway:
		res.Err = new(api.JobError)
		return res, json.Unmarshal(raw, res.Err)
	}
	return res, fmt.Errorf("POST /v1/jobs on %s: %s: %s", c.Name, resp.Status, raw)
}

// Verify checks a job's receipt independently of the client that
// returned it: signed by the node named, over the output received.
func Verify(resp *api.JobResponse) error {
	rc, err := receipt.Parse(resp.Receipt)
	if err != nil {
		return fmt.Errorf("parsing receipt: %w", err)
	}
	id, err := peer.Decode(resp.Node)
	if err != nil {
		return fmt.Errorf("node %q: %w", resp.Node, err)
	}
	return receipt.Verify(rc, receipt.Expect{PeerID: id, Stdout: resp.StdoutBase64, Stderr: resp.StderrBase64,
		CheckStdout: true, CheckStderr: true})
}

// module reads one of the built example modules (make wasm).
func module(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../build/wasm/" + name)
	require.NoError(t, err, "module %s (run make wasm)", name)
	return b
}

// summaryRow is one scenario's line in the summary table.
type summaryRow struct {
	name    string
	pass    bool
	wall    time.Duration
	metrics []string // "discovery 1.2s", ...
}

func (r *summaryRow) note(format string, a ...any) {
	summary.mu.Lock()
	defer summary.mu.Unlock()
	r.metrics = append(r.metrics, fmt.Sprintf(format, a...))
}

type summaryTable struct {
	mu   sync.Mutex
	rows []*summaryRow
}

var summary summaryTable

func (s *summaryTable) add(name string) *summaryRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &summaryRow{name: name}
	s.rows = append(s.rows, r)
	return r
}

func (s *summaryTable) write(path string, total time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# Docker scenarios\n\n%s, total %.1fs\n\n| scenario | result | wall | measurements |\n| --- | --- | --- | --- |\n",
		time.Now().UTC().Format(time.RFC3339), total.Seconds())
	for _, r := range s.rows {
		res := "FAIL"
		if r.pass {
			res = "pass"
		}
		fmt.Fprintf(&b, "| %s | %s | %.1fs | %s |\n", r.name, res, r.wall.Seconds(), strings.Join(r.metrics, "; "))
	}
	if err := os.MkdirAll(dirOf(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i]
	}
	return "."
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000) }

func TestMain(m *testing.M) {
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") != "true" {
		// No registry is reachable, so Ryuk's image cannot be pulled;
		// every scenario removes its own containers and networks.
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	for _, img := range []string{imageNodeAMD64, imageNodeARM64, imageClientAMD64, imageClientARM64, imageRouter} {
		if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
			fmt.Fprintf(os.Stderr, "scenarios: image %s missing (run `make scenarios`, which builds it): %v\n", img, err)
			os.Exit(2)
		}
	}
	began := time.Now()
	code := m.Run()
	out := os.Getenv("PLASM_SCENARIO_SUMMARY")
	if out == "" {
		out = "../../build/scenarios/summary.md"
	}
	if err := summary.write(out, time.Since(began)); err != nil {
		fmt.Fprintf(os.Stderr, "scenarios: writing summary: %v\n", err)
	} else {
		fmt.Fprintf(os.Stderr, "scenarios: summary in %s\n", out)
	}
	os.Exit(code)
}

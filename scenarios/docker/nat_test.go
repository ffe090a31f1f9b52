package scenarios

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/api"
)

// NAT is a router between one private network and the public one.
type NAT struct {
	Router          *Ctr
	Private, Public string
}

// StartNAT starts a router on private and public and programs it from
// the host, in its network namespace (nsenter -n iptables): masquerade
// out of the public interface, forward private→public and the replies,
// drop every other forwarded packet and every unsolicited packet to the
// router itself (nothing unsolicited gets in or is answered). Linux
// masquerading keeps a connection's source port when it can, so the
// mapping is endpoint-independent and hole punching can work; symmetric
// adds --random-fully, a fresh random port per connection, as a
// symmetric NAT does.
func (s *Scenario) StartNAT(name, private, public string, symmetric bool) *NAT {
	s.t.Helper()
	r := s.StartNode(NodeSpec{Name: name, Image: imageRouter, Networks: []string{private, public}, Cmd: []string{},
		ReadyLog: "holding: ready", Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}})
	pubIf := s.ifaceWith(r, r.IPs[public])
	privIf := s.ifaceWith(r, r.IPs[private])
	masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", pubIf, "-j", "MASQUERADE"}
	if symmetric {
		masq = append(masq, "--random-fully")
	}
	s.InNetNS(r, masq...)
	// Unsolicited packets to the router's own public address are dropped
	// as a home router drops them, not answered: without this the
	// router's stack answers a peer's punch (TCP SYN, QUIC packet) that
	// arrives before its own node's with a RST or ICMP port unreachable,
	// and conntrack keeps that inbound flow, so the node's outgoing punch
	// to the same peer and port is masqueraded to another source port.
	s.InNetNS(r, "iptables", "-A", "INPUT", "-i", pubIf, "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	s.InNetNS(r, "iptables", "-P", "FORWARD", "DROP")
	s.InNetNS(r, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	s.InNetNS(r, "iptables", "-A", "FORWARD", "-i", privIf, "-o", pubIf, "-j", "ACCEPT")
	kind := "endpoint-independent"
	if symmetric {
		kind = "symmetric"
	}
	s.logf("%s: %s NAT, private %s (%s) → public %s (%s)", name, kind, privIf, r.IPs[private], pubIf, r.IPs[public])
	return &NAT{Router: r, Private: private, Public: public}
}

// ifaceWith finds the interface holding addr in c's namespace: by
// address, never by interface order, which Docker does not promise.
func (s *Scenario) ifaceWith(c *Ctr, addr string) string {
	s.t.Helper()
	out := s.InNetNS(c, "ip", "-o", "-4", "addr", "show")
	rx := regexp.MustCompile(`^\d+:\s+(\S+)\s+inet\s+` + regexp.QuoteMeta(addr) + `/`)
	for _, l := range strings.Split(out, "\n") {
		if m := rx.FindStringSubmatch(l); m != nil {
			return strings.SplitN(m[1], "@", 2)[0]
		}
	}
	s.t.Fatalf("%s: no interface holds %s:\n%s", c.Name, addr, out)
	return ""
}

// StartBehind starts a node on the NAT's private network whose default
// route is the router: a holder container takes the address, the route is
// set in its namespace, then plasmd starts inside that namespace.
func (s *Scenario) StartBehind(n *NAT, spec NodeSpec) *Ctr {
	s.t.Helper()
	holder := s.StartNode(NodeSpec{Name: spec.Name + "-ns", Image: imageRouter, Networks: []string{n.Private}, Cmd: []string{},
		ReadyLog: "holding: ready"})
	s.InNetNS(holder, "ip", "route", "replace", "default", "via", n.Router.IPs[n.Private])
	spec.NetNS = holder
	spec.Networks = nil
	return s.StartNode(spec)
}

// upgrade is a relayed connection followed by a direct one, as a node
// logged them.
type upgrade struct {
	took time.Duration // from the first relayed to the direct connection
	addr string        // the direct connection's remote address
}

// transport is tcp or quic-v1, what the punched connection runs on.
func (u upgrade) transport() string {
	if strings.Contains(u.addr, "/quic-v1") {
		return "quic-v1"
	}
	return "tcp"
}

// waitDirect waits until c logs a direct connection from peer id coming
// from the address from (a NAT's public address) after a relayed one,
// and measures between the two peer_connected lines' timestamps.
func (s *Scenario) waitDirect(c *Ctr, id fmt.Stringer, from string, limit time.Duration) upgrade {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var relayed time.Time
		for _, l := range s.connLines(c, id) {
			var line struct {
				Time time.Time `json:"time"`
				Addr string    `json:"addr"`
			}
			if json.Unmarshal([]byte(l), &line) != nil {
				continue
			}
			switch {
			case strings.Contains(line.Addr, "/p2p-circuit"):
				if relayed.IsZero() {
					relayed = line.Time
				}
			case strings.HasPrefix(line.Addr, "/ip4/"+from+"/") && !relayed.IsZero():
				return upgrade{took: line.Time.Sub(relayed), addr: line.Addr}
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no direct connection from %s (%s) after a relayed one within %v; hole punch events:\n%s",
				c.Name, id, from, limit, strings.Join(s.logLines(c, `"event":"holepunch"`), "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// logLines are c's log lines matching re.
func (s *Scenario) logLines(c *Ctr, re string) []string {
	rx := regexp.MustCompile(re)
	var out []string
	for _, l := range strings.Split(s.Logs(c), "\n") {
		if rx.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// connLines are the peer_connected log lines of c for peer id.
func (s *Scenario) connLines(c *Ctr, id fmt.Stringer) []string {
	var out []string
	for _, l := range strings.Split(s.Logs(c), "\n") {
		if strings.Contains(l, `"event":"peer_connected"`) && strings.Contains(l, id.String()) {
			out = append(out, l)
		}
	}
	return out
}

// refuseJobs keeps public helper nodes (relay, observers) from taking the
// scenario's jobs: allowlist mode with nobody on the list.
var refuseJobs = map[string]any{"auth": map[string]any{"mode": "allowlist", "allow": []string{}}}

// waitCircuit waits until c finds target with a relayed (p2p-circuit)
// address, i.e. target holds a reservation on the relay.
func (s *Scenario) waitCircuit(c *Ctr, target *Ctr, limit time.Duration) time.Duration {
	s.t.Helper()
	began := time.Now()
	for time.Since(began) < limit {
		found, _ := s.Find(c, "limit=20")
		for _, f := range found {
			if f.PeerID != target.Peer.String() {
				continue
			}
			for _, a := range f.Addrs {
				if strings.Contains(a, "/p2p-circuit") {
					return time.Since(began)
				}
			}
		}
		time.Sleep(time.Second)
	}
	s.t.Fatalf("%s did not find %s with a relayed address within %v", c.Name, target.Name, limit)
	return 0
}

// TestRelay: a node on a private network behind a NAT router, a public
// relay; a client outside finds it and runs a job on it through the
// relay (hole punching off, so the relayed path is what is tested).
func TestRelay(t *testing.T) {
	s := newScenario(t, "relay")
	pub := s.Network("pub", "11.77.3.0/24")
	priv := s.Network("priv", "")
	relay := s.StartNode(NodeSpec{Name: "relay", Image: imageNodeAMD64, Arch: "amd64", Networks: []string{pub},
		Config: map[string]any{"network": map[string]any{"relay_service": true, "reachability": "public", "hole_punching": false}, "jobs": refuseJobs}})
	nat := s.StartNAT("router", priv, pub, false)
	natted := s.StartBehind(nat, NodeSpec{Name: "natted", Image: imageNodeAMD64, Arch: "amd64", Bootstrap: []string{relay.Addr(pub)},
		Config: map[string]any{"network": map[string]any{"static_relays": []string{relay.Addr(pub)}, "reachability": "private", "hole_punching": false}}})
	client := s.StartNode(NodeSpec{Name: "client", Image: imageClientAMD64, Arch: "amd64", Networks: []string{pub}, Bootstrap: []string{relay.Addr(pub)},
		Config: map[string]any{"dht": map[string]any{"client_mode": true}, "network": map[string]any{"hole_punching": false}}})

	took := s.waitCircuit(client, natted, 2*time.Minute)
	s.logf("client found the NATed node with a relayed address in %v", took)
	s.row.note("reservation + discovery %s", ms(took))
	echo := module(t, "echo.wasm")
	for i := range 3 {
		res, err := s.Submit(s.ctx, client, api.JobRequest{Module: echo, Args: []string{"through", "the relay"}, Stdin: []byte(fmt.Sprint(i)),
			MemoryMB: 16, TimeoutSeconds: 30, Attempts: 4})
		require.NoError(t, err)
		require.NoError(t, checkJobEnds(res, fmt.Sprintf("through\nthe relay\n%d", i)), "job %d", i)
		require.Equal(t, natted.Peer.String(), res.Resp.Node, "job %d ran on the NATed node", i)
		s.logf("job %d through the relay: %v", i, res.Latency)
		if i == 0 {
			s.row.note("first relayed job %s", ms(res.Latency))
		} else {
			s.row.note("job %s", ms(res.Latency))
		}
	}
	lines := s.connLines(client, natted.Peer)
	require.NotEmpty(t, lines, "the client logged no connection to the NATed node")
	for _, l := range lines {
		require.Contains(t, l, "/p2p-circuit", "the client reached the NATed node directly, not through the relay: %s", l)
	}
}

// TestTwoNATs: two peers each behind its own endpoint-independent NAT
// meet through the relay, the job completes, and DCUtR upgrades the
// relayed connection B→A to a direct one within a minute (required; the
// time from relayed to direct connection goes in the summary); a third
// behind a symmetric NAT gets its job done through the relay only. The
// public network has four nodes (relay and three observers) because
// libp2p trusts an observed address only once four peers report it
// (hole punching itself uses addresses with one observer).
func TestTwoNATs(t *testing.T) {
	s := newScenario(t, "two-nats")
	pub := s.Network("pub", "11.77.4.0/24")
	privA := s.Network("privA", "")
	privB := s.Network("privB", "")
	privC := s.Network("privC", "")
	relay := s.StartNode(NodeSpec{Name: "relay", Image: imageNodeAMD64, Arch: "amd64", Networks: []string{pub},
		Config: map[string]any{"network": map[string]any{"relay_service": true, "reachability": "public"}, "jobs": refuseJobs}})
	bs := []string{relay.Addr(pub)}
	for i := range 3 {
		s.StartNode(NodeSpec{Name: fmt.Sprintf("observer%d", i+1), Image: imageNodeAMD64, Arch: "amd64", Networks: []string{pub}, Bootstrap: bs,
			Config: map[string]any{"network": map[string]any{"reachability": "public"}, "jobs": refuseJobs}})
	}
	natA := s.StartNAT("routerA", privA, pub, false)
	natB := s.StartNAT("routerB", privB, pub, false)
	natC := s.StartNAT("routerC", privC, pub, true)
	behind := map[string]any{"static_relays": bs, "reachability": "private", "hole_punching": true}
	nodeA := s.StartBehind(natA, NodeSpec{Name: "nodeA", Image: imageNodeAMD64, Arch: "amd64", Bootstrap: bs,
		Config: map[string]any{"network": behind}})
	clientCfg := map[string]any{"dht": map[string]any{"client_mode": true}, "network": behind}
	clientB := s.StartBehind(natB, NodeSpec{Name: "clientB", Image: imageClientAMD64, Arch: "amd64", Bootstrap: bs, Config: clientCfg})
	clientC := s.StartBehind(natC, NodeSpec{Name: "clientC", Image: imageClientAMD64, Arch: "amd64", Bootstrap: bs, Config: clientCfg})

	took := s.waitCircuit(clientB, nodeA, 2*time.Minute)
	s.row.note("reservation + discovery %s", ms(took))
	echo := module(t, "echo.wasm")
	job := func(c *Ctr, i int) JobResult {
		res, err := s.Submit(s.ctx, c, api.JobRequest{Module: echo, Args: []string{"punch", fmt.Sprint(i)}, MemoryMB: 16, TimeoutSeconds: 30, Attempts: 8})
		require.NoError(t, err)
		require.NoError(t, checkJobEnds(res, fmt.Sprintf("punch\n%d\n", i)), "job %d from %s", i, c.Name)
		require.Equal(t, nodeA.Peer.String(), res.Resp.Node, "job %d from %s ran on nodeA", i, c.Name)
		return res
	}
	first := job(clientB, 0)
	s.row.note("job B→A across two NATs %s", ms(first.Latency))
	second := job(clientB, 1)
	s.row.note("second job B→A %s", ms(second.Latency))
	// A direct connection from clientB arrives from routerB's public
	// address; with both NATs dropping unsolicited packets only a punched
	// hole can make one. nodeA received the relayed connection, so it
	// starts DCUtR and logs the outcome.
	up := s.waitDirect(nodeA, clientB.Peer, natB.Router.IPs[pub], time.Minute)
	s.logf("DCUtR: relayed → direct B→A in %v (%s)", up.took, up.addr)
	s.row.note("DCUtR relayed→direct %s (%s)", ms(up.took), up.transport())
	ok := s.WaitLog(nodeA, `"event":"holepunch","kind":"EndHolePunch","peer":"`+clientB.Peer.String()+`","success":true`, 10*time.Second)
	s.logf("nodeA: %s", ok)

	// Symmetric NAT: the job still completes, through the relay.
	s.waitCircuit(clientC, nodeA, 2*time.Minute)
	sym := job(clientC, 2)
	s.row.note("job C→A via relay (symmetric NAT) %s", ms(sym.Latency))
	lines := s.connLines(clientC, nodeA.Peer)
	require.NotEmpty(t, lines)
	for _, l := range lines {
		require.Contains(t, l, "/p2p-circuit", "clientC behind a symmetric NAT connected directly: %s", l)
	}
}

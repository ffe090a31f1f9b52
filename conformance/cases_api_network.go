package conformance

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/phase-protocol/plasm/conformance/ref"
	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/scripted"
)

// apiNetworkCases need nodes of the suite beside the worker (a second
// honest node, one that refuses everything, one that forges receipts).
// They are exclusive: while such a node is up, any job of another case
// could land on it. Each node advertises a limit the worker lacks, and
// each job needs that limit, so the job can only go to that node.
func apiNetworkCases() []Case {
	return []Case{
		{
			Name: "api/jobs/replicas", Reqs: []string{"API-14", "API-12"}, Side: SideAPI, Needs: NeedAPI, Exclusive: true,
			Run: func(t *T) {
				w := apiNetwork(t)
				second := t.suiteNode("replica", "", nil)
				t.apiFound(second)
				args := []string{"same", "output"}
				x := t.APIJob(map[string]any{"module": b64(t.Module("echo")), "args": args, "replicas": 2, "deterministic": true})
				x.Verified(t)
				reps, ok := x.M["replicas"].([]any)
				var ids []string
				for _, r := range reps {
					if s, ok := r.(string); ok && !slices.Contains(ids, s) {
						ids = append(ids, s)
					}
				}
				t.Check(ok && len(ids) == 2 && len(reps) == 2, "API-14: replicas %v, want the 2 distinct agreeing nodes", x.M["replicas"])
				t.Check(slices.Contains(ids, x.Node), "API-14: node %s is not among replicas %v", x.Node, ids)
				for _, id := range ids {
					t.Check(id == w || id == second, "API-14: replica %s is neither of the two nodes that can run the job", id)
				}
				t.Check(bytes.Equal(x.Stdout, []byte("job\nsame\noutput\n")), "API-14: the agreed output is %q", x.Stdout)
			},
		},
		{
			Name: "api/jobs/every-node-refuses", Reqs: []string{"API-15", "API-4"}, Side: SideAPI, Needs: NeedAPI, Exclusive: true,
			Run: func(t *T) {
				apiNetwork(t)
				// Only this node takes modules over the worker's 1 MiB.
				refuser := t.suiteNode("refuser", scripted.RejectAll, func(c *config.Config) { c.Jobs.MaxModuleBytes = 4 << 20 })
				t.apiFound(refuser)
				mod := make([]byte, Settings.MaxModuleBytes+(512<<10))
				a := t.APIPost("/v1/jobs", map[string]any{"module": b64(mod)})
				m := a.APIError(t, "API-15", []int{http.StatusBadGateway}, nil, "attempts")
				tried := false
				for _, at := range checkAttempts(t, m) {
					if at["node"] == refuser {
						tried = true
						t.Check(at["outcome"] == "rejected" && at["reason"] == "queue_full", "API-15: the refusing node's attempt is %s, want rejected queue_full", compact(at))
					}
				}
				t.Check(tried, "API-15: attempts %v does not list the node that refused the job (%s)", m["attempts"], refuser)
			},
		},
		{
			Name: "api/jobs/forged-receipt-is-no-result", Reqs: []string{"RCPT-10", "API-12", "API-15"}, Side: SideAPI, Needs: NeedAPI, Exclusive: true,
			Run: func(t *T) {
				apiNetwork(t)
				// Only this node takes stdin over the worker's 64 KiB; it
				// changes each receipt after signing it.
				liar := t.suiteNode("forger", scripted.ForgedReceipt, func(c *config.Config) { c.Jobs.MaxStdinBytes = 256 << 10 })
				t.apiFound(liar)
				stdin := bytes.Repeat([]byte("x"), int(Settings.MaxStdinBytes)+(32<<10))
				a := t.APIPost("/v1/jobs", map[string]any{"module": b64(t.Module("echo")), "stdin": b64(stdin), "attempts": 1})
				if a.Status == http.StatusOK {
					t.Fatalf("RCPT-10: the API node returned a result whose receipt does not verify: %s", shorten(string(a.Body), 300))
				}
				m := a.APIError(t, "API-15", []int{http.StatusBadGateway}, nil, "attempts")
				found := false
				for _, at := range checkAttempts(t, m) {
					if at["node"] == liar {
						found = true
						t.Check(at["outcome"] == "bad_receipt" && at["reason"] == "signature",
							"RCPT-10: the forged receipt's attempt is %s, want bad_receipt signature", compact(at))
					}
				}
				t.Check(found, "API-15: attempts %v does not list the node tried (%s)", m["attempts"], liar)
			},
		},
		{
			Name: "api/plasm/default-address", Reqs: []string{"API-1", "API-2"}, Side: SideAPI, Needs: NeedAPI | NeedPlasm,
			Run: func(t *T) {
				t.Check(config.DefaultAPI == "127.0.0.1:4748" && config.Default().API == config.DefaultAPI,
					"API-1: the default API address is %q (config default %q), want 127.0.0.1:4748", config.DefaultAPI, config.Default().API)
				// A loopback address must not warn (the non-loopback half
				// would need a socket off loopback, which the suite never
				// opens).
				for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
					var logs syncBuffer
					l, err := api.Listen(addr, slog.New(slog.NewJSONHandler(&logs, nil)))
					if err != nil {
						t.Note("listen %s: %v", addr, err) // no IPv6 here
						continue
					}
					_ = l.Close()
					t.Check(!strings.Contains(logs.String(), "api_exposed"), "API-2: a loopback API (%s) logged api_exposed", addr)
				}
			},
		},
		{
			Name: "api/plasm/peer-id-forms", Reqs: []string{"API-26", "API-18"}, Side: SideAPI, Needs: NeedAPI | NeedPlasm,
			Run: func(t *T) {
				// The spec's test value, then forms that carry no Ed25519 key.
				const good = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
				seed := make([]byte, 32)
				for i := range seed {
					seed[i] = byte(i)
				}
				id, err := identity.FromSeed(seed)
				if err != nil {
					t.Fatalf("%v", err)
				}
				key, err := identity.PublicKeyFromPeerID(id.ID)
				t.Check(err == nil && hex.EncodeToString(key) == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8" && id.ID.String() == good,
					"API-26: Plasm maps the test seed to %s / %x (%v)", id.ID, key, err)
				sum := sha256.Sum256([]byte("an RSA key"))
				qm, _ := mh.Encode(sum[:], mh.SHA2_256)
				var k [32]byte
				_, _ = rand.Read(k[:])
				secp := append([]byte{0x00, 0x25, 0x08, 0x02, 0x12, 0x21, 0x02}, k[:]...) // secp256k1 key type
				short := append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, k[:31]...)
				for name, b := range map[string][]byte{"sha2-256 (Qm…)": qm, "secp256k1": secp, "short ed25519": short} {
					s := peer.ID(b).String() // base58, unchecked
					if _, err := ref.PeerKey(s); err == nil {
						t.Errorf("API-26: the suite's reading takes a key from a %s peer ID", name)
					}
					if pid, err := peer.Decode(s); err == nil {
						if _, err := identity.PublicKeyFromPeerID(pid); err == nil {
							t.Errorf("API-26: Plasm takes an Ed25519 key from a %s peer ID %s", name, s)
						}
					}
				}
			},
		},
	}
}

// suiteNode starts a node of the suite for this case only (closed at its
// end) and returns its peer ID.
func (t *T) suiteNode(name, behaviour string, edit func(*config.Config)) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n, err := t.env.StartNode(t.ctx, name+"-"+hex.EncodeToString(b[:]), behaviour, edit)
	if err != nil {
		t.Fatalf("starting the suite's %s node: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n.Host.ID().String()
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// repeatReader yields n copies of c.
func repeatReader(c byte, n int64) io.Reader {
	return io.LimitReader(byteReader(c), n)
}

type byteReader byte

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 0 {
		p[0] = byte(b)
		for i := 1; i < len(p); i *= 2 {
			copy(p[i:], p[:i])
		}
	}
	return len(p), nil
}

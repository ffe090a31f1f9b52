package conformance

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/phase-protocol/plasm/conformance/ref"
	"github.com/phase-protocol/plasm/conformance/spec"
	"github.com/phase-protocol/plasm/node/canonical"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/receipt"
)

// vectors reads the published receipt vectors.
func vectors(t *T) (seed []byte, cases []struct {
	Name    string          `json:"name"`
	Receipt json.RawMessage `json:"receipt"`
	Stdout  string          `json:"stdout"`
	Stderr  string          `json:"stderr"`
}, legacy json.RawMessage, pub ed25519.PublicKey) {
	raw, err := spec.File("node/receipt/testdata/vectors.json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	var v struct {
		SeedHex      string `json:"seed_hex"`
		PublicKeyHex string `json:"public_key_hex"`
		Cases        []struct {
			Name    string          `json:"name"`
			Receipt json.RawMessage `json:"receipt"`
			Stdout  string          `json:"stdout"`
			Stderr  string          `json:"stderr"`
		} `json:"cases"`
		Legacy struct {
			Receipt json.RawMessage `json:"receipt"`
		} `json:"legacy"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("vectors: %v", err)
	}
	seed, _ = hex.DecodeString(v.SeedHex)
	p, _ := hex.DecodeString(v.PublicKeyHex)
	return seed, v.Cases, v.Legacy.Receipt, p
}

// receiptCases check receipt rules with the published vectors, against
// both the suite's own reading (ref) and Plasm's verifier.
func receiptCases() []Case {
	return []Case{
		{
			Name:  "receipt/vectors-verify",
			Reqs:  []string{"RCPT-3", "RCPT-4", "RCPT-5", "RCPT-6", "API-20", "API-27", "API-28"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				_, cs, _, pub := vectors(t)
				for _, c := range cs {
					if _, err := ref.VerifyReceipt(c.Receipt, ref.Expect{Signer: pub}); err != nil {
						t.Errorf("%s: the suite's reading refuses the vector: %v", c.Name, err)
					}
					rc, err := receipt.Parse(c.Receipt)
					if err != nil {
						t.Errorf("%s: Plasm refuses the vector: %v", c.Name, err)
						continue
					}
					if err := receipt.Verify(rc, receipt.Expect{PublicKey: pub}); err != nil {
						t.Errorf("%s: Plasm's verifier: %v", c.Name, err)
					}
				}
			},
		},
		{
			Name:  "receipt/unknown-or-missing-member",
			Reqs:  []string{"RCPT-2", "RCPT-4", "API-17"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				_, cs, _, _ := vectors(t)
				good := string(cs[0].Receipt)
				open := strings.Index(good, "{") + 1
				insert := func(member string) string { return good[:open] + member + "," + good[open:] }
				for name, bad := range map[string]string{
					"unknown member":   insert(`"gpu":true`),
					"duplicate member": insert(`"version":"1"`),
					"null member":      strings.Replace(good, `"deterministic": false`, `"deterministic": null`, 1),
				} {
					if bad == good {
						t.Fatalf("the %s edit did not apply", name)
					}
					if _, err := receipt.Parse([]byte(bad)); err == nil {
						t.Errorf("Plasm accepted a receipt with a %s", name)
					}
					if _, err := ref.VerifyReceipt([]byte(bad), ref.Expect{Signer: make([]byte, 32)}); err == nil {
						t.Errorf("the suite's reading accepted a receipt with a %s", name)
					}
				}
			},
		},
		{
			Name:  "receipt/signer-from-the-peer-dialled",
			Reqs:  []string{"ID-2", "RCPT-5", "API-18", "API-19"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				_, cs, _, _ := vectors(t)
				rc, err := receipt.Parse(cs[0].Receipt)
				if err != nil {
					t.Fatalf("%v", err)
				}
				other, _ := identity.Generate()
				err = receipt.Verify(rc, receipt.Expect{PeerID: other.ID})
				t.Check(err != nil && strings.Contains(err.Error(), receipt.CheckSigner),
					"a receipt valid for its own key was accepted for another peer: %v", err)
			},
		},
		{
			Name:  "receipt/legacy-needs-pinned-key",
			Reqs:  []string{"LEG-1", "LEG-2"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				_, _, legacy, pub := vectors(t)
				lr, err := receipt.ParseLegacy(legacy)
				if err != nil {
					t.Fatalf("%v", err)
				}
				t.Check(receipt.VerifyLegacy(lr, pub) == nil, "the known-answer legacy receipt does not verify")
				t.Check(receipt.VerifyLegacy(lr, nil) != nil, "LEG-1: a legacy receipt verified without a pinned key")
				other := make([]byte, 32)
				t.Check(receipt.VerifyLegacy(lr, other) != nil, "LEG-1: a legacy receipt verified against another key")
				_, err = receipt.Parse(legacy)
				t.Check(err != nil, "LEG-2: a v0.1 receipt parsed as a v1 receipt (proof of a run)")
			},
		},
	}
}

// localCases check rules that only show inside an implementation: Plasm's
// own configuration, key storage and canonical JSON.
func localCases() []Case {
	return []Case{
		{
			Name:  "local/bootstrap-needs-p2p",
			Reqs:  []string{"DHT-2"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				_, err := config.ParseBootstrap([]string{"/ip4/127.0.0.1/tcp/4747"})
				t.Check(err != nil, "a bootstrap address without /p2p/ was taken")
				id, _ := identity.Generate()
				var many []string
				for range 65 {
					other, _ := identity.Generate()
					many = append(many, "/ip4/127.0.0.1/tcp/4747/p2p/"+other.ID.String())
				}
				got, err := config.ParseBootstrap(many)
				t.Check(err != nil || len(got) <= 64, "65 bootstrap addresses: %d taken", len(got))
				_ = id
			},
		},
		{
			Name:  "local/key-file",
			Reqs:  []string{"ID-1", "ID-3"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				dir := filepath.Join(t.Env().Dir, "key-"+NewNonce()[:8])
				_ = os.MkdirAll(dir, 0o700)
				id, err := identity.LoadOrCreate(dir)
				if err != nil {
					t.Fatalf("%v", err)
				}
				st, err := os.Stat(filepath.Join(dir, identity.KeyFile))
				if err != nil {
					t.Fatalf("%v", err)
				}
				t.Check(st.Mode().Perm() == 0o600, "key file mode %v, want 0600", st.Mode().Perm())
				t.Check(ref.PeerID(id.PublicKey()) == id.ID.String(), "the peer ID is not the identity multihash of the key")
				_ = os.WriteFile(filepath.Join(dir, identity.KeyFile), []byte("short"), 0o600)
				_, err = identity.LoadOrCreate(dir)
				t.Check(err != nil, "a corrupt key file was silently replaced")
			},
		},
		{
			Name:  "local/canonical-json-refusals",
			Reqs:  []string{"API-29", "API-27"},
			Side:  SideNode,
			Needs: NeedPlasm,
			Run: func(t *T) {
				for _, in := range []string{`{"a":1.5}`, `{"a":1e3}`, `{"a":1,"a":1}`, `"\ud800"`, "\"\xff\"", `{} {}`, `{"a":9007199254740992}`} {
					if _, err := canonical.Canonicalize([]byte(in)); err == nil {
						t.Errorf("canonicalised %q", in)
					}
				}
				got, err := canonical.Canonicalize([]byte(`{"b":[true,null,-0],"a":"\u2028/<","\ud800\udc00":1,"\uffff":2}`))
				t.Check(err == nil && string(got) == `{"a":"`+"\u2028"+`/<","b":[true,null,0],"`+"\U00010000"+`":1,"`+"\uffff"+`":2}`,
					"canonical form %s (%v)", got, err)
			},
		},
	}
}

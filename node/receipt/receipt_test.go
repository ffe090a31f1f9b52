package receipt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/canonical"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
)

// seedFrom returns the 32 bytes first, first+1, …, first+31.
func seedFrom(first byte) []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = first + byte(i)
	}
	return s
}

func mustIdentity(t testing.TB, first byte) *identity.Identity {
	t.Helper()
	id, err := identity.FromSeed(seedFrom(first))
	require.NoError(t, err)
	return id
}

// fixture is one signed run and the facts a client would know about it.
type fixture struct {
	node, requester *identity.Identity
	args            []string
	stdin           []byte
	stdout, stderr  []byte
	receipt         *Receipt
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		node:      mustIdentity(t, 0x00),
		requester: mustIdentity(t, 0x20),
		args:      []string{"hello", "world"},
		stdin:     []byte{},
		stdout:    []byte("dlrow olleh\n"),
		stderr:    []byte{},
	}
	start := time.Date(2026, 11, 26, 8, 30, 0, 123_000_000, time.UTC)
	r := &Receipt{
		Version:    Version,
		ModuleHash: phase.HashBytes([]byte("\x00asm\x01\x00\x00\x00")),
		ExitCode:   0,
		WallTimeMS: 42,
		NodePubkey: f.node.PublicKeyHex(),
		JobID:      "job-0001",
		Nonce:      strings.Repeat("ab", 32),
		Requester:  f.requester.ID.String(),
		NodePeerID: f.node.ID.String(),
		InputHash:  InputHash(f.args, f.stdin),
		StdoutHash: phase.HashBytes(f.stdout),
		StderrHash: phase.HashBytes(f.stderr),
		Outcome:    phase.OutcomeExited,
		Limits:     Limits{MemoryMB: 64, TimeoutMS: 30_000, StdoutCap: 1 << 20, StderrCap: 1 << 16},
	}
	r.SetTimes(start, start.Add(42*time.Millisecond))
	require.NoError(t, r.Sign(f.node.Ed25519()))
	f.receipt = r
	return f
}

func (f *fixture) expect() Expect {
	return Expect{
		PeerID:      f.node.ID,
		JobID:       f.receipt.JobID,
		Nonce:       f.receipt.Nonce,
		Requester:   f.requester.ID.String(),
		ModuleHash:  f.receipt.ModuleHash,
		InputHash:   InputHash(f.args, f.stdin),
		Stdout:      f.stdout,
		Stderr:      f.stderr,
		CheckStdout: true,
		CheckStderr: true,
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return data
}

// checkOf runs Parse then Verify and returns the failing check ("" if none).
func checkOf(t *testing.T, data []byte, exp Expect) string {
	t.Helper()
	r, err := Parse(data)
	if err == nil {
		err = Verify(r, exp)
	}
	if err == nil {
		return ""
	}
	var ce *CheckError
	require.True(t, errors.As(err, &ce), "error must be a *CheckError: %v", err)
	require.NotEmpty(t, ce.Detail)
	return ce.Check
}

func TestSignVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	data := marshal(t, f.receipt)
	r, err := Parse(data)
	require.NoError(t, err)
	assert.Equal(t, f.receipt, r)

	exp := f.expect()
	require.NoError(t, Verify(r, exp))

	byKey := exp
	byKey.PeerID = ""
	byKey.PublicKey = f.node.PublicKey()
	require.NoError(t, Verify(r, byKey))

	both := exp
	both.PublicKey = f.node.PublicKey()
	require.NoError(t, Verify(r, both))

	require.NoError(t, Verify(r, Expect{}), "self-consistent check")
	assert.True(t, SelfConsistent(Expect{JobID: "x"}))
	assert.False(t, SelfConsistent(exp))
	assert.False(t, SelfConsistent(byKey))
}

// unsignedView marshals as the receipt without its signature: the outer
// Signature field shadows the embedded one and, being nil, is omitted.
type unsignedView struct {
	*Receipt
	Signature *struct{} `json:"signature,omitempty"`
}

// referenceSigningBytes is the obvious, slow definition of SigningBytes:
// encoding/json of every field but signature, then RFC 8785.
func referenceSigningBytes(r *Receipt) ([]byte, error) {
	body, err := canonical.Marshal(unsignedView{Receipt: r})
	if err != nil {
		return nil, err
	}
	return append([]byte(DomainPrefix), body...), nil
}

func TestRCPT3_SigningBytesMatchReference(t *testing.T) {
	f := newFixture(t)
	odd := *f.receipt
	odd.JobID = "<&>\"\\\n\x01é😀\u2028\xff" // SigningBytes must not depend on validity
	odd.ExitCode, odd.WallTimeMS, odd.Timestamp = -5, canonical.MaxSafeInteger, -canonical.MaxSafeInteger
	odd.Deterministic, odd.StdoutTruncated = true, true
	for _, r := range []*Receipt{f.receipt, &odd, {}} {
		got, err := r.SigningBytes()
		require.NoError(t, err)
		want, err := referenceSigningBytes(r)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
	}

	big := *f.receipt
	big.Limits.TimeoutMS = canonical.MaxSafeInteger + 1
	_, err := big.SigningBytes()
	require.ErrorContains(t, err, "limits.timeout_ms 9007199254740992 out of range")
	_, err = referenceSigningBytes(&big)
	require.Error(t, err)
}

func FuzzSigningBytes(f *testing.F) {
	f.Add("1", "job", "exited", "", int64(0), int64(0), int64(0), true, false)
	f.Add("\x00<\xff", "é\u2028", "\"\\", "x", int64(-1), int64(1<<53), int64(-1<<53), false, true)
	f.Fuzz(func(t *testing.T, version, jobID, outcome, requester string, exit, wall, ts int64, det, trunc bool) {
		r := &Receipt{
			Version: version, JobID: jobID, Outcome: outcome, Requester: requester,
			ExitCode: int(exit), WallTimeMS: wall, Timestamp: ts,
			Deterministic: det, StdoutTruncated: trunc, StderrTruncated: !trunc,
			Limits:     Limits{MemoryMB: int(exit), TimeoutMS: wall, StdoutCap: int(ts), StderrCap: 3},
			NodePubkey: jobID, Nonce: outcome, StartedAt: version, Signature: jobID,
		}
		got, gotErr := r.SigningBytes()
		want, wantErr := referenceSigningBytes(r)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("error mismatch: fast %v, reference %v", gotErr, wantErr)
		}
		if string(got) != string(want) {
			t.Fatalf("fast %q != reference %q", got, want)
		}
	})
}

func TestRCPT3_SigningBytesCoverEveryFieldButSignature(t *testing.T) {
	f := newFixture(t)
	msg, err := f.receipt.SigningBytes()
	require.NoError(t, err)
	body, ok := bytes.CutPrefix(msg, []byte(DomainPrefix))
	require.True(t, ok, "signing bytes start with the domain prefix")
	assert.NotContains(t, string(body), " ", "no whitespace")

	var signed map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &signed))
	var keys []string
	for k := range signed {
		keys = append(keys, k)
	}
	want := slices.DeleteFunc(slices.Clone(receiptFields), func(s string) bool { return s == "signature" })
	assert.ElementsMatch(t, want, keys)
	assert.Len(t, receiptFields, 21)

	// Keys appear sorted.
	assert.True(t, strings.HasPrefix(string(body), `{"deterministic":false,"exit_code":0,"finished_at":`), "%s", body)
	// The signature does not influence the signing bytes.
	r2 := *f.receipt
	r2.Signature = ""
	msg2, err := r2.SigningBytes()
	require.NoError(t, err)
	assert.Equal(t, msg, msg2)
}

// tamper changes one thing in the receipt's JSON object.
type tamper struct {
	name   string
	fields []string // JSON fields (limits.x for nested) this case covers
	mutate func(doc map[string]any, f *fixture)
	want   string // the check that must catch it
}

func flipHex(s string) string {
	last := s[len(s)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return s[:len(s)-1] + string(repl)
}

func set(field string, v any) func(map[string]any, *fixture) {
	return func(doc map[string]any, _ *fixture) { doc[field] = v }
}

func flip(field string) func(map[string]any, *fixture) {
	return func(doc map[string]any, _ *fixture) { doc[field] = flipHex(doc[field].(string)) }
}

func toggle(field string) func(map[string]any, *fixture) {
	return func(doc map[string]any, _ *fixture) { doc[field] = !doc[field].(bool) }
}

func setLimit(field string, v int64) func(map[string]any, *fixture) {
	return func(doc map[string]any, _ *fixture) { doc["limits"].(map[string]any)[field] = v }
}

func TestRCPT6_RCPT7_RCPT8_RCPT9_TamperEachField(t *testing.T) {
	other := mustIdentity(t, 0x40)
	f := newFixture(t)
	msg, err := f.receipt.SigningBytes()
	require.NoError(t, err)
	otherSig := hex.EncodeToString(ed25519.Sign(other.Ed25519(), msg))
	cases := []tamper{
		{"version", []string{"version"}, set("version", "2"), CheckFormat},
		{"module_hash", []string{"module_hash"}, flip("module_hash"), CheckSignature},
		{"exit_code", []string{"exit_code"}, set("exit_code", 1), CheckSignature},
		{"wall_time_ms", []string{"wall_time_ms"}, set("wall_time_ms", 43), CheckSignature},
		{"timestamp alone", []string{"timestamp"}, set("timestamp", 1795681801), CheckFormat},
		{"timestamp with finished_at", []string{"timestamp"}, func(doc map[string]any, _ *fixture) {
			doc["timestamp"] = 1795681801
			doc["finished_at"] = "2026-11-26T08:30:01.165Z"
		}, CheckSignature},
		{"node_pubkey", []string{"node_pubkey"}, set("node_pubkey", other.PublicKeyHex()), CheckSigner},
		{"job_id", []string{"job_id"}, set("job_id", "job-0002"), CheckSignature},
		{"nonce", []string{"nonce"}, flip("nonce"), CheckSignature},
		{"requester", []string{"requester"}, set("requester", other.ID.String()), CheckSignature},
		{"requester emptied", []string{"requester"}, set("requester", ""), CheckSignature},
		{"node_peer_id", []string{"node_peer_id"}, set("node_peer_id", other.ID.String()), CheckSigner},
		{"input_hash", []string{"input_hash"}, flip("input_hash"), CheckSignature},
		{"stdout_hash", []string{"stdout_hash"}, flip("stdout_hash"), CheckSignature},
		{"stderr_hash", []string{"stderr_hash"}, flip("stderr_hash"), CheckSignature},
		{"stdout_truncated", []string{"stdout_truncated"}, toggle("stdout_truncated"), CheckSignature},
		{"stderr_truncated", []string{"stderr_truncated"}, toggle("stderr_truncated"), CheckSignature},
		{"outcome alone", []string{"outcome"}, set("outcome", phase.OutcomeTrapped), CheckFormat},
		{"outcome with exit_code", []string{"outcome"}, func(doc map[string]any, _ *fixture) {
			doc["outcome"] = phase.OutcomeTimeout
			doc["exit_code"] = -1
		}, CheckSignature},
		{"deterministic", []string{"deterministic"}, toggle("deterministic"), CheckSignature},
		{"limits.memory_mb", []string{"limits", "limits.memory_mb"}, setLimit("memory_mb", 65), CheckSignature},
		{"limits.timeout_ms", []string{"limits.timeout_ms"}, setLimit("timeout_ms", 30_001), CheckSignature},
		{"limits.stdout_cap", []string{"limits.stdout_cap"}, setLimit("stdout_cap", 1), CheckSignature},
		{"limits.stderr_cap", []string{"limits.stderr_cap"}, setLimit("stderr_cap", 1), CheckSignature},
		{"started_at", []string{"started_at"}, set("started_at", "2026-11-26T08:30:00.122Z"), CheckSignature},
		{"finished_at", []string{"finished_at"}, set("finished_at", "2026-11-26T08:30:00.166Z"), CheckSignature},
		{"signature", []string{"signature"}, flip("signature"), CheckSignature},
		{"signature from another key", []string{"signature"}, set("signature", otherSig), CheckSignature},
		{"extra field", nil, set("extra", 1), CheckFormat},
		{"removed field", nil, func(doc map[string]any, _ *fixture) { delete(doc, "nonce") }, CheckFormat},
	}

	base := marshal(t, f.receipt)
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]any
			require.NoError(t, json.Unmarshal(base, &doc))
			tc.mutate(doc, f)
			data := marshal(t, doc)
			require.NotEqual(t, string(base), string(data), "mutation must change the document")
			got := checkOf(t, data, f.expect())
			assert.Equal(t, tc.want, got, "tampering %s must fail the %s check", tc.name, tc.want)
			t.Logf("tampered %-28s -> %s check", tc.name, got)
		})
		for _, fld := range tc.fields {
			covered[fld] = true
		}
	}
	// Every field of a marshalled receipt, nested ones included, is tampered.
	var doc map[string]any
	require.NoError(t, json.Unmarshal(base, &doc))
	for k, v := range doc {
		assert.True(t, covered[k], "field %q has no tamper case", k)
		if sub, ok := v.(map[string]any); ok {
			for sk := range sub {
				assert.True(t, covered[k+"."+sk], "field %q has no tamper case", k+"."+sk)
			}
		}
	}
}

func TestRCPT5_RCPT6_VerifyFailures(t *testing.T) {
	f := newFixture(t)
	other := mustIdentity(t, 0x40)
	secp := secpPeer(t)

	// forged: claims the node's key and peer ID but is signed by another key.
	forged := *f.receipt
	require.NoError(t, forgeSign(&forged, other.Ed25519()))

	// impostor: a well-formed receipt entirely from another node.
	impostor := *f.receipt
	impostor.NodePubkey = other.PublicKeyHex()
	impostor.NodePeerID = other.ID.String()
	require.NoError(t, impostor.Sign(other.Ed25519()))

	// mismatched: signed by the node's key but naming another peer ID.
	mismatched := *f.receipt
	mismatched.NodePeerID = other.ID.String()
	require.NoError(t, forgeSign(&mismatched, f.node.Ed25519()))

	mod := func(fn func(*Receipt)) *Receipt {
		r := *f.receipt
		fn(&r)
		return &r
	}
	withExp := func(fn func(*Expect)) Expect {
		e := f.expect()
		fn(&e)
		return e
	}
	tests := []struct {
		name    string
		r       *Receipt
		exp     Expect
		want    string
		wantMsg string
	}{
		{"nil receipt", nil, f.expect(), CheckFormat, "nil receipt"},
		{"truncated signature", mod(func(r *Receipt) { r.Signature = r.Signature[:126] }), f.expect(), CheckFormat, "signature: must be 128 lowercase hex"},
		{"empty signature", mod(func(r *Receipt) { r.Signature = "" }), f.expect(), CheckFormat, "signature"},
		{"non-hex signature", mod(func(r *Receipt) { r.Signature = "zz" + r.Signature[2:] }), f.expect(), CheckFormat, "signature"},
		{"uppercase signature", mod(func(r *Receipt) { r.Signature = strings.ToUpper(r.Signature) }), f.expect(), CheckFormat, "signature"},
		{"forged signature", &forged, f.expect(), CheckSignature, "does not verify"},
		{"forged signature, self-consistent", &forged, Expect{}, CheckSignature, "does not verify"},
		{"wrong signer peer", &impostor, f.expect(), CheckSigner, "not the expected signer"},
		{"impostor self-consistent passes", &impostor, Expect{}, "", ""},
		{"pinned key mismatch", f.receipt, withExp(func(e *Expect) { e.PeerID = ""; e.PublicKey = other.PublicKey() }), CheckSigner, "not the expected signer's key"},
		{"peer and pinned key disagree", f.receipt, withExp(func(e *Expect) { e.PublicKey = other.PublicKey() }), CheckSigner, "disagree"},
		{"short pinned key", f.receipt, withExp(func(e *Expect) { e.PeerID = ""; e.PublicKey = other.PublicKey()[:31] }), CheckSigner, "must be 32 bytes"},
		{"non-Ed25519 expected peer", f.receipt, withExp(func(e *Expect) { e.PeerID = secp }), CheckSigner, "want Ed25519"},
		{"peer ID not matching key, self-consistent", &mismatched, Expect{}, CheckSigner, "node_peer_id"},
		{"peer ID not matching key, pinned", &mismatched, withExp(func(e *Expect) { e.PeerID = ""; e.PublicKey = f.node.PublicKey() }), CheckSigner, "node_peer_id"},
		{"job_id mismatch", f.receipt, withExp(func(e *Expect) { e.JobID = "job-9" }), CheckJobID, `expected "job-9"`},
		{"nonce mismatch", f.receipt, withExp(func(e *Expect) { e.Nonce = strings.Repeat("cd", 32) }), CheckNonce, "expected"},
		{"requester mismatch", f.receipt, withExp(func(e *Expect) { e.Requester = other.ID.String() }), CheckRequester, other.ID.String()},
		{"module_hash mismatch", f.receipt, withExp(func(e *Expect) { e.ModuleHash = phase.HashBytes([]byte("other")) }), CheckModuleHash, "expected"},
		{"input_hash mismatch", f.receipt, withExp(func(e *Expect) { e.InputHash = InputHash([]string{"hello"}, nil) }), CheckInputHash, "expected"},
		{"stdout bytes mismatch", f.receipt, withExp(func(e *Expect) { e.Stdout = []byte("dlrow olleh") }), CheckStdoutHash, "11 stdout bytes"},
		{"stderr bytes mismatch", f.receipt, withExp(func(e *Expect) { e.Stderr = []byte("x") }), CheckStderrHash, "1 stderr bytes"},
		{"stdout unchecked when flag off", f.receipt, withExp(func(e *Expect) { e.Stdout = []byte("other"); e.CheckStdout = false }), "", ""},
		{"empty facts are not checked", f.receipt, Expect{PeerID: f.node.ID}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.r, tt.exp)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			var ce *CheckError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.want, ce.Check)
			assert.Contains(t, ce.Error(), tt.wantMsg)
			assert.Contains(t, ce.Error(), "receipt: "+tt.want+" check failed")
		})
	}
}

// forgeSign signs r as-is with priv, skipping Sign's own-key checks.
func forgeSign(r *Receipt, priv ed25519.PrivateKey) error {
	msg, err := r.SigningBytes()
	if err != nil {
		return err
	}
	r.Signature = hex.EncodeToString(ed25519.Sign(priv, msg))
	return nil
}

// secpPeer returns a secp256k1 peer ID: it inlines its key, so it decodes,
// but it is not Ed25519.
func secpPeer(t *testing.T) peer.ID {
	t.Helper()
	priv, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(priv)
	require.NoError(t, err)
	return id
}

func limitsAs(t *testing.T, base string, v any) string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(base), &doc))
	doc["limits"] = v
	return string(marshal(t, doc))
}

func TestSignErrors(t *testing.T) {
	f := newFixture(t)
	other := mustIdentity(t, 0x40)
	tests := []struct {
		name    string
		mutate  func(*Receipt)
		priv    ed25519.PrivateKey
		wantErr string
	}{
		{"other key", func(*Receipt) {}, other.Ed25519(), "node_pubkey"},
		{"peer ID of another node", func(r *Receipt) { r.NodePeerID = other.ID.String() }, f.node.Ed25519(), "node_peer_id"},
		{"short key", func(*Receipt) {}, f.node.Ed25519()[:32], "private key must be 64 bytes"},
		{"malformed nonce", func(r *Receipt) { r.Nonce = "abc" }, f.node.Ed25519(), "nonce: must be 64 lowercase hex"},
		{"malformed times", func(r *Receipt) { r.StartedAt = "yesterday" }, f.node.Ed25519(), "started_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := *f.receipt
			r.Signature = ""
			tt.mutate(&r)
			err := r.Sign(tt.priv)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Empty(t, r.Signature, "no signature on failure")
		})
	}
}

func TestRCPT2_RCPT4_ParseFormatErrors(t *testing.T) {
	f := newFixture(t)
	base := string(marshal(t, f.receipt))
	replace := func(old, new string) string {
		require.Contains(t, base, old)
		return strings.Replace(base, old, new, 1)
	}
	cidPeer := peer.ToCid(f.requester.ID).String()
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"not JSON", `{`, "invalid JSON"},
		{"array", `[]`, "want a JSON object, got an array"},
		{"null", `null`, "got null"},
		{"too large", `{"x":"` + strings.Repeat("a", MaxSize) + `"}`, "max 65536"},
		{"trailing data", base + `{}`, "trailing data"},
		{"duplicate key", replace(`"job_id":"job-0001"`, `"job_id":"job-0001","job_id":"job-0002"`), `duplicate member name "job_id"`},
		{"missing field", replace(`"nonce":"`+f.receipt.Nonce+`",`, ""), `field "nonce": missing`},
		{"null field", replace(`"nonce":"`+f.receipt.Nonce+`"`, `"nonce":null`), `field "nonce": must not be null`},
		{"unknown field", replace(`{"version"`, `{"gpu":true,"version"`), `field "gpu": unknown member`},
		{"unknown limits field", replace(`"limits":{`, `"limits":{"cpu":1,`), `field "limits.cpu": unknown member`},
		{"missing limits field", replace(`"memory_mb":64,`, ""), `field "limits.memory_mb": missing`},
		{"limits not object", limitsAs(t, base, 5), `field "limits": must be an object, got a number`},
		{"limits array", limitsAs(t, base, []int{1}), `field "limits": must be an object, got an array`},
		{"string for int", replace(`"wall_time_ms":42`, `"wall_time_ms":"42"`), `field "wall_time_ms": must be an integer, got a string`},
		{"int for bool", replace(`"deterministic":false`, `"deterministic":0`), `field "deterministic": must be a boolean, got a number`},
		{"float", replace(`"wall_time_ms":42`, `"wall_time_ms":42.5`), "without fraction or exponent"},
		{"huge int", replace(`"wall_time_ms":42`, `"wall_time_ms":9007199254740992`), "out of range"},
		{"version", replace(`"version":"1"`, `"version":"0.1"`), `version: must be "1"`},
		{"hash uppercase", replace(f.receipt.ModuleHash, strings.ToUpper(f.receipt.ModuleHash)), "module_hash: must be \"sha256:\""},
		{"short nonce", replace(f.receipt.Nonce, f.receipt.Nonce[:62]), "nonce: must be 64 lowercase hex"},
		{"pubkey length", replace(f.receipt.NodePubkey, f.receipt.NodePubkey+"00"), "node_pubkey: must be 64 lowercase hex"},
		{"job_id empty", replace(`"job_id":"job-0001"`, `"job_id":""`), "job_id: must be 1–128 characters, got 0"},
		{"job_id space", replace(`"job_id":"job-0001"`, `"job_id":"job 1"`), "job_id: byte 3"},
		{"job_id too long", replace(`"job_id":"job-0001"`, `"job_id":"`+strings.Repeat("j", 129)+`"`), "job_id: must be 1–128 characters, got 129"},
		{"requester garbage", replace(f.requester.ID.String(), "nope"), "requester: must be a peer ID"},
		{"requester CID form", replace(f.requester.ID.String(), cidPeer), "canonical base58 form"},
		{"node_peer_id not Ed25519", replace(`"node_peer_id":"`+f.node.ID.String()+`"`, `"node_peer_id":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"`), "node_peer_id: \"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N\" is not an Ed25519 peer ID"},
		{"node_peer_id empty", replace(`"node_peer_id":"`+f.node.ID.String()+`"`, `"node_peer_id":""`), "node_peer_id: must be a peer ID"},
		{"outcome", replace(`"outcome":"exited"`, `"outcome":"crashed"`), "outcome: must be one of exited|trapped"},
		{"exit_code negative for exited", replace(`"exit_code":0`, `"exit_code":-1`), "exit_code: -1 out of range 0–4294967295"},
		{"exit_code set for trap", replace(`"outcome":"exited"`, `"outcome":"trapped"`), `exit_code: must be -1 for outcome "trapped"`},
		{"negative wall time", replace(`"wall_time_ms":42`, `"wall_time_ms":-1`), "wall_time_ms: must not be negative"},
		{"limits memory zero", replace(`"memory_mb":64`, `"memory_mb":0`), "limits.memory_mb: 0 out of range 1–32768"},
		{"limits timeout over", replace(`"timeout_ms":30000`, `"timeout_ms":3600001`), "limits.timeout_ms: 3600001 out of range"},
		{"limits cap negative", replace(`"stdout_cap":1048576`, `"stdout_cap":-1`), "limits.stdout_cap: must not be negative"},
		{"time without millis", replace(`"started_at":"2026-11-26T08:30:00.123Z"`, `"started_at":"2026-11-26T08:30:00Z"`), "started_at: must be RFC 3339 UTC with milliseconds"},
		{"time with micros", replace(`"started_at":"2026-11-26T08:30:00.123Z"`, `"started_at":"2026-11-26T08:30:00.123000Z"`), "started_at: must be RFC 3339"},
		{"time with offset", replace(`"started_at":"2026-11-26T08:30:00.123Z"`, `"started_at":"2026-11-26T09:30:00.123+01:00"`), "started_at: must be RFC 3339"},
		{"finished before started", replace(`"started_at":"2026-11-26T08:30:00.123Z"`, `"started_at":"2026-11-26T08:30:00.999Z"`), "finished_at: 2026-11-26T08:30:00.165Z is before started_at"},
		{"timestamp mismatch", replace(`"timestamp":1795681800`, `"timestamp":1795681799`), "timestamp: 1795681799 does not match finished_at"},
		{"several problems listed", replace(`"job_id":"job-0001","nonce":"`+f.receipt.Nonce, `"job_id":"","nonce":"x`), "job_id: must be 1–128 characters, got 0; nonce:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.in))
			require.Error(t, err)
			assert.Nil(t, r)
			var ce *CheckError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, CheckFormat, ce.Check)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestInputHash(t *testing.T) {
	const emptySHA = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	assert.Equal(t, emptySHA, phase.HashBytes(nil))
	assert.Equal(t, emptySHA, phase.HashBytes([]byte{}))

	doc := InputDocument(nil, nil)
	assert.Equal(t, `{"args":[],"stdin":"`+emptySHA+`"}`, string(doc))
	assert.Equal(t, phase.HashBytes(doc), InputHash(nil, nil))
	assert.Equal(t, InputHash(nil, nil), InputHash([]string{}, []byte{}))

	doc = InputDocument([]string{"a b", `q"\`, "é</>\n\x01\u2028"}, []byte("in"))
	assert.Equal(t, `{"args":["a b","q\"\\","é</>\n\u0001`+"\u2028"+`"],"stdin":"`+phase.HashBytes([]byte("in"))+`"}`, string(doc))

	// Different splits of the same text differ.
	assert.NotEqual(t, InputHash([]string{"a b"}, nil), InputHash([]string{"a", "b"}, nil))
	assert.NotEqual(t, InputHash(nil, []byte("x")), InputHash([]string{"x"}, nil))
}

func TestSetTimes(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 678_999_999, time.FixedZone("X", 3600))
	var r Receipt
	r.SetTimes(start, start.Add(1500*time.Millisecond))
	assert.Equal(t, "2026-01-02T02:04:05.678Z", r.StartedAt)
	assert.Equal(t, "2026-01-02T02:04:07.178Z", r.FinishedAt)
	assert.Equal(t, time.Date(2026, 1, 2, 2, 4, 7, 0, time.UTC).Unix(), r.Timestamp)
}

func TestSniff(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{"v1", string(marshal(t, f.receipt)), Version, ""},
		{"legacy", `{"version":"0.1","module_hash":"x"}`, LegacyVersion, ""},
		{"unknown version", `{"version":"2"}`, "", `unknown receipt version "2"`},
		{"number version", `{"version":1}`, "", "version: must be a string"},
		{"missing version", `{"module_hash":"x"}`, "", "version: required field missing"},
		{"not an object", `[1]`, "", "not a JSON object"},
		{"garbage", `xx`, "", "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sniff([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParse(f *testing.F) {
	fx := newFixture(f)
	good := marshal(f, fx.receipt)
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"exit_code":0`), []byte(`"exit_code":-1`), 1))
	f.Add(bytes.Replace(good, []byte(`"limits":{`), []byte(`"limits":{"x":1,`), 1))
	f.Add([]byte(`{"version":"1"}`))
	f.Add([]byte(`{"version":"0.1","module_hash":"sha256:00","exit_code":0,"wall_time_ms":1,"timestamp":1,"node_pubkey":"","signature":""}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	exp := fx.expect()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Check != CheckFormat || ce.Detail == "" {
				t.Fatalf("Parse error is not a format CheckError: %v", err)
			}
			_, _ = Sniff(data)
			_, _ = ParseLegacy(data)
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Parse(again)
		if err != nil || *r2 != *r {
			t.Fatalf("round trip failed: %v", err)
		}
		// Verify must not panic, and only the untouched receipt may pass
		// against the fixture's expectations.
		if Verify(r, exp) == nil && *r != *fx.receipt {
			t.Fatalf("a modified receipt verified: %s", data)
		}
		_ = Verify(r, Expect{})
	})
}

package ref

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Hash is "sha256:" and the lowercase hex SHA-256 of b.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// InputHash is SPEC §3.2: the hash of {"args":[…],"stdin":"sha256:…"}.
func InputHash(args []string, stdin []byte) string {
	doc := []byte(`{"args":[`)
	for i, a := range args {
		if i > 0 {
			doc = append(doc, ',')
		}
		var b bytes.Buffer
		writeString(&b, a)
		doc = append(doc, b.Bytes()...)
	}
	doc = append(doc, `],"stdin":"`+Hash(stdin)+`"}`...)
	return Hash(doc)
}

// Expect is what a verifier knows (SPEC §3.4).
type Expect struct {
	Signer                  ed25519.PublicKey // the peer dialled
	JobID, Nonce, Requester string            // "" skips the check
	ModuleHash, InputHash   string
	Stdout, Stderr          []byte
	CheckOutput             bool
}

// CheckError names the first failed check, in the spec's order.
type CheckError struct {
	Check  string
	Detail string
}

func (e *CheckError) Error() string { return e.Check + ": " + e.Detail }

var receiptMembers = []string{"version", "module_hash", "exit_code", "wall_time_ms", "timestamp", "node_pubkey", "job_id",
	"nonce", "requester", "node_peer_id", "input_hash", "stdout_hash", "stderr_hash", "stdout_truncated",
	"stderr_truncated", "outcome", "deterministic", "limits", "started_at", "finished_at", "signature"}

var (
	hashRE   = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hex64RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	jobIDRE  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	timeRE   = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	outcomes = []string{"exited", "trapped", "timeout", "memory_limit", "invalid_module", "hash_mismatch"}
)

// Receipt is a receipt v1 as the suite reads it.
type Receipt map[string]any

// Str and Int read members of a receipt that passed VerifyReceipt.
func (r Receipt) Str(k string) string { s, _ := r[k].(string); return s }
func (r Receipt) Int(k string) int64 {
	n, _ := r[k].(json.Number)
	v, _ := Integer(n)
	return v
}
func (r Receipt) Bool(k string) bool { b, _ := r[k].(bool); return b }
func (r Receipt) Limits() map[string]int64 {
	out := map[string]int64{}
	m, _ := r["limits"].(map[string]any)
	for k, v := range m {
		n, _ := v.(json.Number)
		out[k], _ = Integer(n)
	}
	return out
}

// VerifyReceipt applies SPEC §3.4's checks in order and returns the
// receipt, or the first failed check.
func VerifyReceipt(raw []byte, exp Expect) (Receipt, error) {
	fail := func(check, f string, a ...any) (Receipt, error) {
		return nil, &CheckError{Check: check, Detail: fmt.Sprintf(f, a...)}
	}
	m, err := Object(raw)
	if err != nil {
		return fail("format", "%v", err)
	}
	if len(m) != len(receiptMembers) {
		return fail("format", "%d members, want %d", len(m), len(receiptMembers))
	}
	for _, k := range receiptMembers {
		if _, ok := m[k]; !ok {
			return fail("format", "%s missing", k)
		}
	}
	for _, k := range []string{"version", "module_hash", "node_pubkey", "job_id", "nonce", "requester", "node_peer_id",
		"input_hash", "stdout_hash", "stderr_hash", "outcome", "started_at", "finished_at", "signature"} {
		if _, ok := m[k].(string); !ok {
			return fail("format", "%s is not a string", k)
		}
	}
	for _, k := range []string{"stdout_truncated", "stderr_truncated", "deterministic"} {
		if _, ok := m[k].(bool); !ok {
			return fail("format", "%s is not a boolean", k)
		}
	}
	for _, k := range []string{"exit_code", "wall_time_ms", "timestamp"} {
		n, ok := m[k].(json.Number)
		if !ok {
			return fail("format", "%s is not a number", k)
		}
		if _, err := Integer(n); err != nil {
			return fail("format", "%s: %v", k, err)
		}
	}
	lim, ok := m["limits"].(map[string]any)
	if !ok || len(lim) != 4 {
		return fail("format", "limits is not an object of 4 members")
	}
	for _, k := range []string{"memory_mb", "timeout_ms", "stdout_cap", "stderr_cap"} {
		n, ok := lim[k].(json.Number)
		if !ok {
			return fail("format", "limits.%s missing or not a number", k)
		}
		if _, err := Integer(n); err != nil {
			return fail("format", "limits.%s: %v", k, err)
		}
	}
	r := Receipt(m)
	if r.Str("version") != "1" {
		return fail("format", "version %q", r.Str("version"))
	}
	for _, k := range []string{"module_hash", "input_hash", "stdout_hash", "stderr_hash"} {
		if !hashRE.MatchString(r.Str(k)) {
			return fail("format", "%s is not a hash", k)
		}
	}
	if !hex64RE.MatchString(r.Str("node_pubkey")) || !hex64RE.MatchString(r.Str("nonce")) || !jobIDRE.MatchString(r.Str("job_id")) {
		return fail("format", "node_pubkey, nonce or job_id malformed")
	}
	if !slices.Contains(outcomes, r.Str("outcome")) {
		return fail("format", "outcome %q", r.Str("outcome"))
	}
	if ec := r.Int("exit_code"); (r.Str("outcome") == "exited") != (ec >= 0) || ec > 1<<32-1 || (ec < 0 && ec != -1) {
		return fail("format", "exit_code %d for outcome %s", ec, r.Str("outcome"))
	}
	var started, finished time.Time
	for k, t := range map[string]*time.Time{"started_at": &started, "finished_at": &finished} {
		if !timeRE.MatchString(r.Str(k)) {
			return fail("format", "%s %q", k, r.Str(k))
		}
		*t, err = time.Parse("2006-01-02T15:04:05.000Z", r.Str(k))
		if err != nil {
			return fail("format", "%s: %v", k, err)
		}
	}
	if finished.Before(started) || r.Int("timestamp") != finished.Unix() {
		return fail("format", "times inconsistent")
	}
	sig, err := hex.DecodeString(r.Str("signature"))
	if err != nil || len(sig) != 64 {
		return fail("format", "signature is not 128 hex")
	}
	// signer
	if exp.Signer == nil {
		return fail("signer", "no expected signer")
	}
	if r.Str("node_pubkey") != hex.EncodeToString(exp.Signer) || r.Str("node_peer_id") != PeerID(exp.Signer) {
		return fail("signer", "receipt names %s, the peer dialled is %s", r.Str("node_peer_id"), PeerID(exp.Signer))
	}
	// signature
	body := make(map[string]any, len(m)-1)
	for k, v := range m {
		if k != "signature" {
			body[k] = v
		}
	}
	c, err := Canonical(body)
	if err != nil {
		return fail("format", "not canonicalisable: %v", err)
	}
	if !ed25519.Verify(exp.Signer, append([]byte("phase-receipt:v1:"), c...), sig) {
		return fail("signature", "does not verify")
	}
	for _, f := range []struct{ check, want string }{
		{"job_id", exp.JobID}, {"nonce", exp.Nonce}, {"requester", exp.Requester},
		{"module_hash", exp.ModuleHash}, {"input_hash", exp.InputHash},
	} {
		if f.want != "" && r.Str(f.check) != f.want {
			return fail(f.check, "%q, want %q", r.Str(f.check), f.want)
		}
	}
	if exp.CheckOutput {
		if r.Str("stdout_hash") != Hash(exp.Stdout) {
			return fail("stdout_hash", "does not match the stdout bytes")
		}
		if r.Str("stderr_hash") != Hash(exp.Stderr) {
			return fail("stderr_hash", "does not match the stderr bytes")
		}
	}
	return r, nil
}

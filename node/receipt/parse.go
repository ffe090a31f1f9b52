package receipt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/canonical"
	"github.com/phase-protocol/plasm/node/identity"
)

// MaxSize caps an encoded receipt; real ones are about 1 KiB.
const MaxSize = 64 << 10

// Ranges of the applied limits, inclusive.
const (
	MaxLimitMemoryMB  = 32768
	MaxLimitTimeoutMS = 3_600_000
	MaxExitCode       = 1<<32 - 1 // WASI exit codes are uint32
	maxJobIDLen       = 128
)

// Field names in JSON, derived from the struct tags so they cannot drift.
var (
	receiptFields = jsonFields(reflect.TypeFor[Receipt]())
	limitsFields  = jsonFields(reflect.TypeFor[Limits]())
)

func jsonFields(t reflect.Type) []string {
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// Parse decodes a v1 receipt strictly: at most MaxSize bytes, one JSON
// object with no duplicate keys and no trailing data, every field present
// and non-null, no unknown fields, each field of the right type and form.
// It does not check the signature or the signer: that is Verify's job.
// Errors are *CheckError with Check "format" and name the field.
func Parse(data []byte) (*Receipt, error) {
	if len(data) > MaxSize {
		return nil, formatErr("receipt is %d bytes, max %d", len(data), MaxSize)
	}
	// Canonicalize rejects duplicate keys, non-integers, invalid UTF-8 and
	// trailing data, so every verifier sees one unambiguous document.
	if _, err := canonical.Canonicalize(data); err != nil {
		return nil, formatErr("invalid JSON: %v", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, formatErr("%s", typeProblem("", err))
	}
	if top == nil {
		return nil, formatErr("receipt must be a JSON object, got null")
	}
	if problems := presence("", top, receiptFields); len(problems) > 0 {
		return nil, formatErr("%s", joinProblems(problems))
	}
	var limits map[string]json.RawMessage
	if err := json.Unmarshal(top["limits"], &limits); err != nil {
		return nil, formatErr("%s", typeProblem("limits", err))
	}
	if problems := presence("limits.", limits, limitsFields); len(problems) > 0 {
		return nil, formatErr("%s", joinProblems(problems))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	r := new(Receipt)
	if err := dec.Decode(r); err != nil {
		return nil, formatErr("%s", typeProblem("", err))
	}
	if problems := r.formatProblems(true); len(problems) > 0 {
		return nil, formatErr("%s", joinProblems(problems))
	}
	return r, nil
}

// presence reports missing, null and unknown members of one object.
func presence(prefix string, obj map[string]json.RawMessage, fields []string) []string {
	var problems []string
	for _, f := range fields {
		raw, ok := obj[f]
		switch {
		case !ok:
			problems = append(problems, prefix+f+": required field missing")
		case string(raw) == "null":
			problems = append(problems, prefix+f+": must not be null")
		}
	}
	var unknown []string
	for k := range obj {
		if !slices.Contains(fields, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		problems = append(problems, fmt.Sprintf("%s%s: unknown field", prefix, quote(k)))
	}
	return problems
}

func typeProblem(field string, err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		name := typeErr.Field
		if name == "" {
			name = field
		}
		if name == "" {
			return fmt.Sprintf("receipt must be a JSON object, got %s", typeErr.Value)
		}
		return fmt.Sprintf("%s: must be %s, got %s", name, kindName(typeErr.Type), typeErr.Value)
	}
	if field != "" {
		return fmt.Sprintf("%s: %v", field, err)
	}
	return err.Error()
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return t.String()
	}
}

// formatProblems lists every field whose value is out of form; the
// signature is only required when withSig is set.
func (r *Receipt) formatProblems(withSig bool) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if r.Version != Version {
		add("version: must be %q, got %s", Version, quote(r.Version))
	}
	for _, h := range []struct{ name, v string }{
		{"module_hash", r.ModuleHash},
		{"input_hash", r.InputHash},
		{"stdout_hash", r.StdoutHash},
		{"stderr_hash", r.StderrHash},
	} {
		if !isHash(h.v) {
			add(`%s: must be "sha256:" followed by 64 lowercase hex digits, got %s`, h.name, quote(h.v))
		}
	}
	if !slices.Contains(Outcomes, r.Outcome) {
		add("outcome: must be one of %s, got %s", strings.Join(Outcomes, "|"), quote(r.Outcome))
	} else if r.Outcome == OutcomeExited {
		if r.ExitCode < 0 || r.ExitCode > MaxExitCode {
			add("exit_code: %d out of range 0–%d for outcome %q", r.ExitCode, MaxExitCode, r.Outcome)
		}
	} else if r.ExitCode != NoExitCode {
		add("exit_code: must be %d for outcome %q (the guest did not exit), got %d", NoExitCode, r.Outcome, r.ExitCode)
	}
	if r.WallTimeMS < 0 {
		add("wall_time_ms: must not be negative, got %d", r.WallTimeMS)
	}
	if r.Timestamp < 0 {
		add("timestamp: must not be negative, got %d", r.Timestamp)
	}
	if !isLowerHex(r.NodePubkey, 64) {
		add("node_pubkey: must be 64 lowercase hex characters (32-byte Ed25519 key), got %s", quote(r.NodePubkey))
	}
	if !validJobID(r.JobID) {
		add("job_id: must be 1–%d characters of [A-Za-z0-9._:-], got %s", maxJobIDLen, quote(r.JobID))
	}
	if !isLowerHex(r.Nonce, 64) {
		add("nonce: must be 64 lowercase hex characters (32 bytes), got %s", quote(r.Nonce))
	}
	if r.Requester != "" {
		if _, err := canonicalPeerID(r.Requester); err != nil {
			add("requester: %v", err)
		}
	}
	if id, err := canonicalPeerID(r.NodePeerID); err != nil {
		add("node_peer_id: %v", err)
	} else if _, err := identity.PublicKeyFromPeerID(id); err != nil {
		add("node_peer_id: %s is not an Ed25519 peer ID (the node's key signs receipts)", quote(r.NodePeerID))
	}
	l := r.Limits
	if l.MemoryMB < 1 || l.MemoryMB > MaxLimitMemoryMB {
		add("limits.memory_mb: %d out of range 1–%d", l.MemoryMB, MaxLimitMemoryMB)
	}
	if l.TimeoutMS < 1 || l.TimeoutMS > MaxLimitTimeoutMS {
		add("limits.timeout_ms: %d out of range 1–%d", l.TimeoutMS, MaxLimitTimeoutMS)
	}
	if l.StdoutCap < 0 {
		add("limits.stdout_cap: must not be negative, got %d", l.StdoutCap)
	}
	if l.StderrCap < 0 {
		add("limits.stderr_cap: must not be negative, got %d", l.StderrCap)
	}
	started, errS := parseTime(r.StartedAt)
	if errS != nil {
		add("started_at: %v", errS)
	}
	finished, errF := parseTime(r.FinishedAt)
	if errF != nil {
		add("finished_at: %v", errF)
	}
	if errS == nil && errF == nil && finished.Before(started) {
		add("finished_at: %s is before started_at %s", r.FinishedAt, r.StartedAt)
	}
	if errF == nil && r.Timestamp != finished.Unix() {
		add("timestamp: %d does not match finished_at %s (want %d)", r.Timestamp, r.FinishedAt, finished.Unix())
	}
	if withSig && !isLowerHex(r.Signature, 128) {
		add("signature: must be 128 lowercase hex characters (64-byte Ed25519 signature), got %d characters", len(r.Signature))
	}
	return p
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	// Re-formatting catches what Parse tolerates (e.g. other fraction lengths).
	if err != nil || t.Format(TimeLayout) != s {
		return time.Time{}, fmt.Errorf("must be RFC 3339 UTC with milliseconds like 2026-11-26T08:30:00.123Z, got %s", quote(s))
	}
	return t, nil
}

// canonicalPeerID accepts a peer ID only in its canonical base58 string
// form, so one key has exactly one signed spelling. peer.ID.String() always
// starts with "1" (identity multihash) or "Qm" (sha2-256), and base58 is a
// bijection, so any such string that decodes is canonical; other spellings
// (CIDs) decode too but are refused.
func canonicalPeerID(s string) (peer.ID, error) {
	if s == "" {
		return "", errors.New("must be a peer ID, got \"\"")
	}
	if len(s) > 128 {
		return "", fmt.Errorf("must be a peer ID, got %d characters", len(s))
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("must be a peer ID, got %s", quote(s))
	}
	if !strings.HasPrefix(s, "1") && !strings.HasPrefix(s, "Qm") {
		return "", fmt.Errorf("peer ID %s must be in canonical base58 form %s", quote(s), id)
	}
	return id, nil
}

func validJobID(s string) bool {
	if len(s) == 0 || len(s) > maxJobIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func isHash(s string) bool {
	h, ok := strings.CutPrefix(s, HashPrefix)
	return ok && isLowerHex(h, 64)
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// quote shows a value from a receipt safely: quoted, escaped, shortened.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

func joinProblems(p []string) string { return strings.Join(p, "; ") }

func formatErr(format string, args ...any) *CheckError {
	return &CheckError{Check: CheckFormat, Detail: fmt.Sprintf(format, args...)}
}

// Sniff tells receipt formats apart by their "version" member: it returns
// Version ("1") or LegacyVersion ("0.1"), or an error for anything else. It
// validates nothing else; parse with Parse or ParseLegacy.
func Sniff(data []byte) (string, error) {
	if len(data) > MaxSize {
		return "", fmt.Errorf("receipt: %d bytes, max %d", len(data), MaxSize)
	}
	var probe struct {
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return "", fmt.Errorf("receipt: not a JSON object: %w", err)
	}
	if probe.Version == nil {
		return "", errors.New("receipt: version: required field missing")
	}
	var v string
	if err := json.Unmarshal(probe.Version, &v); err != nil {
		return "", fmt.Errorf("receipt: version: must be a string, got %s", quote(string(probe.Version)))
	}
	switch v {
	case Version, LegacyVersion:
		return v, nil
	default:
		return "", fmt.Errorf("receipt: version: unknown receipt version %s (known: %q, legacy %q)", quote(v), Version, LegacyVersion)
	}
}

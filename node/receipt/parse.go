package receipt

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// MaxSize caps an encoded receipt; real ones are about 1 KiB.
const MaxSize = 64 << 10

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
// object with no duplicate names at any depth, no trailing data, every field
// present and non-null, no unknown fields, each field of the right type and
// form, every number an integer within ±(2^53−1) so the receipt has one
// canonical form. It does not check the signature or the signer: that is
// Verify's job. Errors are *CheckError with Check "format" and name the
// field.
func Parse(data []byte) (*Receipt, error) {
	if len(data) > MaxSize {
		return nil, formatErr("receipt is %d bytes, max %d", len(data), MaxSize)
	}
	f, err := strictjson.ParseObject(data)
	if err != nil {
		return nil, formatErr("invalid JSON: %v", err)
	}
	const lim = phase.MaxSafeInteger
	f.Only(receiptFields...)
	r := &Receipt{
		Version:         f.String("version", true),
		ModuleHash:      f.String("module_hash", true),
		ExitCode:        int(f.Int("exit_code", true, -lim, lim)),
		WallTimeMS:      f.Int("wall_time_ms", true, -lim, lim),
		Timestamp:       f.Int("timestamp", true, -lim, lim),
		NodePubkey:      f.String("node_pubkey", true),
		JobID:           f.String("job_id", true),
		Nonce:           f.String("nonce", true),
		Requester:       f.String("requester", true),
		NodePeerID:      f.String("node_peer_id", true),
		InputHash:       f.String("input_hash", true),
		StdoutHash:      f.String("stdout_hash", true),
		StderrHash:      f.String("stderr_hash", true),
		StdoutTruncated: f.Bool("stdout_truncated", true),
		StderrTruncated: f.Bool("stderr_truncated", true),
		Outcome:         f.String("outcome", true),
		Deterministic:   f.Bool("deterministic", true),
		StartedAt:       f.String("started_at", true),
		FinishedAt:      f.String("finished_at", true),
		Signature:       f.String("signature", true),
	}
	if l := f.Object("limits", true); l != nil {
		l.Only(limitsFields...)
		r.Limits = Limits{
			MemoryMB:  int(l.Int("memory_mb", true, -lim, lim)),
			TimeoutMS: l.Int("timeout_ms", true, -lim, lim),
			StdoutCap: int(l.Int("stdout_cap", true, -lim, lim)),
			StderrCap: int(l.Int("stderr_cap", true, -lim, lim)),
		}
	}
	if err := f.Err(); err != nil {
		return nil, formatErr("%v", err)
	}
	if problems := r.formatProblems(true); len(problems) > 0 {
		return nil, formatErr("%s", joinProblems(problems))
	}
	return r, nil
}

// formatProblems lists every field whose value is out of form; the
// signature is only required when withSig is set.
func (r *Receipt) formatProblems(withSig bool) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if r.Version != Version {
		add("version: must be %q, got %s", Version, phase.Quote(r.Version))
	}
	for _, h := range []struct{ name, v string }{
		{"module_hash", r.ModuleHash},
		{"input_hash", r.InputHash},
		{"stdout_hash", r.StdoutHash},
		{"stderr_hash", r.StderrHash},
	} {
		if !phase.IsHash(h.v) {
			add(`%s: must be "sha256:" followed by 64 lowercase hex digits, got %s`, h.name, phase.Quote(h.v))
		}
	}
	if !phase.IsOutcome(r.Outcome) {
		add("outcome: must be one of %s, got %s", strings.Join(phase.Outcomes(), "|"), phase.Quote(r.Outcome))
	} else if r.Outcome == phase.OutcomeExited {
		if r.ExitCode < 0 || r.ExitCode > phase.MaxExitCode {
			add("exit_code: %d out of range 0–%d for outcome %q", r.ExitCode, phase.MaxExitCode, r.Outcome)
		}
	} else if r.ExitCode != phase.NoExitCode {
		add("exit_code: must be %d for outcome %q (the guest did not exit), got %d", phase.NoExitCode, r.Outcome, r.ExitCode)
	}
	if r.WallTimeMS < 0 {
		add("wall_time_ms: must not be negative, got %d", r.WallTimeMS)
	}
	if r.Timestamp < 0 {
		add("timestamp: must not be negative, got %d", r.Timestamp)
	}
	if !phase.IsLowerHex(r.NodePubkey, 64) {
		add("node_pubkey: must be 64 lowercase hex characters (32-byte Ed25519 key), got %s", phase.Quote(r.NodePubkey))
	}
	if err := phase.CheckJobID(r.JobID); err != nil {
		add("job_id: %v", err)
	}
	if err := phase.CheckNonce(r.Nonce); err != nil {
		add("nonce: %v", err)
	}
	if r.Requester != "" {
		if _, err := canonicalPeerID(r.Requester); err != nil {
			add("requester: %v", err)
		}
	}
	if id, err := canonicalPeerID(r.NodePeerID); err != nil {
		add("node_peer_id: %v", err)
	} else if _, err := identity.PublicKeyFromPeerID(id); err != nil {
		add("node_peer_id: %s is not an Ed25519 peer ID (the node's key signs receipts)", phase.Quote(r.NodePeerID))
	}
	l := r.Limits
	if l.MemoryMB < phase.MinMemoryMB || l.MemoryMB > phase.MaxMemoryMB {
		add("limits.memory_mb: %d out of range %d–%d", l.MemoryMB, phase.MinMemoryMB, phase.MaxMemoryMB)
	}
	if l.TimeoutMS < 1 || l.TimeoutMS > phase.MaxTimeoutMS {
		add("limits.timeout_ms: %d out of range 1–%d", l.TimeoutMS, phase.MaxTimeoutMS)
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
	if withSig && !phase.IsLowerHex(r.Signature, 128) {
		add("signature: must be 128 lowercase hex characters (64-byte Ed25519 signature), got %d characters", len(r.Signature))
	}
	return p
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	// Re-formatting catches what Parse tolerates (e.g. other fraction lengths).
	if err != nil || t.Format(TimeLayout) != s {
		return time.Time{}, fmt.Errorf("must be RFC 3339 UTC with milliseconds like 2026-11-26T08:30:00.123Z, got %s", phase.Quote(s))
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
		return "", fmt.Errorf("must be a peer ID, got %s", phase.Quote(s))
	}
	if !strings.HasPrefix(s, "1") && !strings.HasPrefix(s, "Qm") {
		return "", fmt.Errorf("peer ID %s must be in canonical base58 form %s", phase.Quote(s), id)
	}
	return id, nil
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
		return "", fmt.Errorf("receipt: version: must be a string, got %s", phase.Quote(string(probe.Version)))
	}
	switch v {
	case Version, LegacyVersion:
		return v, nil
	default:
		return "", fmt.Errorf("receipt: version: unknown receipt version %s (known: %q, legacy %q)", phase.Quote(v), Version, LegacyVersion)
	}
}

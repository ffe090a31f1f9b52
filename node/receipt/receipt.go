// Package receipt implements Phase receipts: the Ed25519-signed statement a
// node returns with a job's output, binding who ran which module on which
// input for whom, and what came out.
//
// A v1 receipt is a JSON object (see Receipt and schemas/receipt.schema.json).
// Its signature is Ed25519 over
//
//	"phase-receipt:v1:" || canonical JSON of every field except "signature"
//
// where canonical JSON is RFC 8785 (sorted keys, no whitespace; all numbers
// in a receipt are integers). A receipt proves who ran what and what came
// out; it does not prove the output is right.
//
// Legacy v0.1 receipts (the seed prototype's) are supported for verification
// only, against a pinned key; see VerifyLegacy.
package receipt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/phase-protocol/plasm/node/canonical"
	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
)

// Version is the receipt format this package signs.
const Version = "1"

// DomainPrefix is prepended to the canonical JSON before signing, so a
// receipt signature can never be mistaken for a signature over anything else.
const DomainPrefix = "phase-receipt:v1:"

// TimeLayout is the layout of started_at and finished_at: RFC 3339 in UTC
// with exactly three fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Limits are the limits the node actually applied (after clamping).
type Limits struct {
	MemoryMB  int   `json:"memory_mb"`
	TimeoutMS int64 `json:"timeout_ms"`
	StdoutCap int   `json:"stdout_cap"`
	StderrCap int   `json:"stderr_cap"`
}

// Receipt is a v1 receipt. Every field except Signature is signed.
type Receipt struct {
	Version         string `json:"version"`          // "1"
	ModuleHash      string `json:"module_hash"`      // "sha256:<hex>" of the module bytes
	ExitCode        int    `json:"exit_code"`        // -1 when the guest did not exit
	WallTimeMS      int64  `json:"wall_time_ms"`     // run time measured by the node
	Timestamp       int64  `json:"timestamp"`        // unix seconds at finish (seed field); equals finished_at's seconds
	NodePubkey      string `json:"node_pubkey"`      // lowercase hex of the 32-byte Ed25519 key
	JobID           string `json:"job_id"`           // 1–128 chars of [A-Za-z0-9._:-]
	Nonce           string `json:"nonce"`            // lowercase hex, 32 bytes (64 hex chars)
	Requester       string `json:"requester"`        // peer ID string of the requester ("" for local runs)
	NodePeerID      string `json:"node_peer_id"`     // peer ID string of the node (its Ed25519 key)
	InputHash       string `json:"input_hash"`       // see InputHash
	StdoutHash      string `json:"stdout_hash"`      // HashBytes of the stdout bytes returned (after truncation)
	StderrHash      string `json:"stderr_hash"`      // HashBytes of the stderr bytes returned (after truncation)
	StdoutTruncated bool   `json:"stdout_truncated"` // stdout hit its cap
	StderrTruncated bool   `json:"stderr_truncated"` // stderr hit its cap
	Outcome         string `json:"outcome"`          // exited|trapped|timeout|memory_limit|invalid_module|hash_mismatch
	Deterministic   bool   `json:"deterministic"`    // ran in deterministic mode
	Limits          Limits `json:"limits"`           // limits applied
	StartedAt       string `json:"started_at"`       // TimeLayout, e.g. 2026-11-26T08:30:00.123Z
	FinishedAt      string `json:"finished_at"`      // TimeLayout
	Signature       string `json:"signature"`        // lowercase hex, 64 bytes
}

// InputDocument returns the canonical JSON document that InputHash hashes:
//
//	{"args":[<arg>,...],"stdin":"sha256:<lowercase hex SHA-256 of stdin>"}
//
// Exactly these two keys in this order, no whitespace; args in order as JSON
// strings (an empty or nil list is []), escaped as RFC 8785 / ECMAScript
// JSON.stringify does: \" \\ \b \f \n \r \t, \u00xx (lowercase hex) for the
// other control characters below U+0020, and every other character — '/',
// non-ASCII, U+2028/U+2029 — written as raw UTF-8. Bytes of an argument that
// are not valid UTF-8 are each replaced by U+FFFD (arguments travel as JSON
// strings, so on the wire they are always valid UTF-8).
//
// In PHP: json_encode(["args" => $args, "stdin" => "sha256:" . hash("sha256",
// $stdin)], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE |
// JSON_UNESCAPED_LINE_TERMINATORS) gives the same bytes, provided $args is a
// list (array_values) of valid UTF-8 strings.
func InputDocument(args []string, stdin []byte) []byte {
	sum := sha256.Sum256(stdin)
	doc := make([]byte, 0, 96+16*len(args))
	doc = append(doc, `{"args":[`...)
	for i, a := range args {
		if i > 0 {
			doc = append(doc, ',')
		}
		doc = canonical.AppendString(doc, a)
	}
	doc = append(doc, `],"stdin":"`+phase.HashPrefix...)
	doc = hex.AppendEncode(doc, sum[:])
	doc = append(doc, `"}`...)
	return doc
}

// InputHash binds a run to its input: "sha256:" followed by the lowercase
// hex SHA-256 of InputDocument(args, stdin). Module bytes are bound
// separately by module_hash.
func InputHash(args []string, stdin []byte) string {
	return phase.HashBytes(InputDocument(args, stdin))
}

// FormatTime renders t as a receipt time: UTC, millisecond precision
// (truncated), e.g. 2026-11-26T08:30:00.123Z.
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(TimeLayout)
}

// SetTimes fills StartedAt, FinishedAt and Timestamp (finish in unix
// seconds) consistently.
func (r *Receipt) SetTimes(start, finish time.Time) {
	r.StartedAt = FormatTime(start)
	r.FinishedAt = FormatTime(finish)
	r.Timestamp = finish.UTC().Truncate(time.Millisecond).Unix()
}

// SigningBytes returns DomainPrefix followed by the RFC 8785 canonical JSON
// of every field except signature. These are the bytes Ed25519 signs.
//
// The canonical JSON is written directly (keys in sorted order) rather than
// through encoding/json and canonical.Canonicalize, which costs several
// times more; tests check both give the same bytes for every field.
func (r *Receipt) SigningBytes() ([]byte, error) {
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"exit_code", int64(r.ExitCode)},
		{"wall_time_ms", r.WallTimeMS},
		{"timestamp", r.Timestamp},
		{"limits.memory_mb", int64(r.Limits.MemoryMB)},
		{"limits.timeout_ms", r.Limits.TimeoutMS},
		{"limits.stdout_cap", int64(r.Limits.StdoutCap)},
		{"limits.stderr_cap", int64(r.Limits.StderrCap)},
	} {
		if n.v > canonical.MaxSafeInteger || n.v < -canonical.MaxSafeInteger {
			return nil, fmt.Errorf("receipt: canonical form: %s %d out of range ±%d (2^53−1)", n.name, n.v, int64(canonical.MaxSafeInteger))
		}
	}
	b := make([]byte, 0, 1024)
	b = append(b, DomainPrefix...)
	b = appendBool(append(b, `{"deterministic":`...), r.Deterministic)
	b = strconv.AppendInt(append(b, `,"exit_code":`...), int64(r.ExitCode), 10)
	b = canonical.AppendString(append(b, `,"finished_at":`...), r.FinishedAt)
	b = canonical.AppendString(append(b, `,"input_hash":`...), r.InputHash)
	b = canonical.AppendString(append(b, `,"job_id":`...), r.JobID)
	b = strconv.AppendInt(append(b, `,"limits":{"memory_mb":`...), int64(r.Limits.MemoryMB), 10)
	b = strconv.AppendInt(append(b, `,"stderr_cap":`...), int64(r.Limits.StderrCap), 10)
	b = strconv.AppendInt(append(b, `,"stdout_cap":`...), int64(r.Limits.StdoutCap), 10)
	b = strconv.AppendInt(append(b, `,"timeout_ms":`...), r.Limits.TimeoutMS, 10)
	b = canonical.AppendString(append(b, `},"module_hash":`...), r.ModuleHash)
	b = canonical.AppendString(append(b, `,"node_peer_id":`...), r.NodePeerID)
	b = canonical.AppendString(append(b, `,"node_pubkey":`...), r.NodePubkey)
	b = canonical.AppendString(append(b, `,"nonce":`...), r.Nonce)
	b = canonical.AppendString(append(b, `,"outcome":`...), r.Outcome)
	b = canonical.AppendString(append(b, `,"requester":`...), r.Requester)
	b = canonical.AppendString(append(b, `,"started_at":`...), r.StartedAt)
	b = canonical.AppendString(append(b, `,"stderr_hash":`...), r.StderrHash)
	b = appendBool(append(b, `,"stderr_truncated":`...), r.StderrTruncated)
	b = canonical.AppendString(append(b, `,"stdout_hash":`...), r.StdoutHash)
	b = appendBool(append(b, `,"stdout_truncated":`...), r.StdoutTruncated)
	b = strconv.AppendInt(append(b, `,"timestamp":`...), r.Timestamp, 10)
	b = canonical.AppendString(append(b, `,"version":`...), r.Version)
	b = strconv.AppendInt(append(b, `,"wall_time_ms":`...), r.WallTimeMS, 10)
	return append(b, '}'), nil
}

func appendBool(b []byte, v bool) []byte {
	return strconv.AppendBool(b, v)
}

// Sign checks that the receipt is well formed and that NodePubkey and
// NodePeerID are priv's, then sets Signature. It never changes who the
// receipt claims signed it.
func (r *Receipt) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("receipt: sign: private key must be %d bytes, got %d", ed25519.PrivateKeySize, len(priv))
	}
	pub := priv.Public().(ed25519.PublicKey)
	if want := hex.EncodeToString(pub); r.NodePubkey != want {
		return fmt.Errorf("receipt: sign: node_pubkey %s is not the signing key's public key %s", phase.Quote(r.NodePubkey), want)
	}
	id, err := identity.PeerIDFromPublicKey(pub)
	if err != nil {
		return fmt.Errorf("receipt: sign: %w", err)
	}
	if r.NodePeerID != id.String() {
		return fmt.Errorf("receipt: sign: node_peer_id %s is not the signing key's peer ID %s", phase.Quote(r.NodePeerID), id)
	}
	if problems := r.formatProblems(false); len(problems) > 0 {
		return fmt.Errorf("receipt: sign: malformed receipt: %s", joinProblems(problems))
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return fmt.Errorf("receipt: sign: %w", err)
	}
	r.Signature = hex.EncodeToString(ed25519.Sign(priv, msg))
	return nil
}

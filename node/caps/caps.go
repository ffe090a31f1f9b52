// Package caps is the signed capability record of a Phase node: what it can
// run, its limits and its current load. It holds the record format (parse,
// sign, verify), the DHT record validator for the /phase-caps/ namespace, the
// matching and ranking of records against a job's requirements, and a thin
// libp2p layer that publishes records and answers live queries.
//
// Wire summary (for SPEC.md and other implementations):
//
//   - Record: a JSON object with exactly the fields of Record, at most
//     MaxRecordSize bytes. signature = lowercase hex of the Ed25519 signature,
//     by the key embedded in peer_id, over DomainPrefix ("phase-caps:v1:")
//     followed by the RFC 8785 canonical JSON of the record without
//     "signature". Integers only, each at most 2^53-1; seq is unix
//     microseconds (or prev+1), so it fits and still grows across restarts.
//   - DHT: value under /phase-caps/<peer-id>, validated by Validator (signed
//     by the peer the key names, not expired); highest seq wins.
//   - Provider records: see ProviderKeys and ProviderCID.
//   - Live query: protocol /phase/caps/1.0.0; one frame each way (unsigned
//     varint length, then body): {"type":"caps_request"} (at most 1 KiB),
//     answered by {"type":"caps","record":{...}}; anything else resets the
//     stream. 5 s deadline.
package caps

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/canonical"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// Record format constants.
const (
	// Version is the only record version this package reads and writes.
	Version = 1
	// DomainPrefix is prepended to the canonical JSON before signing, so a
	// capability signature can never be replayed as another kind of message.
	DomainPrefix = "phase-caps:v1:"
	// MaxRecordSize caps the JSON encoding of a record, in bytes.
	MaxRecordSize = phase.MaxRecordSize
	// MaxLifetime caps expires_at - issued_at: a record must be refreshed at
	// least this often, so a lost node drops out of the DHT within a day.
	MaxLifetime = 24 * time.Hour
	// ClockSkew is how far in the future issued_at may be.
	ClockSkew = 30 * time.Second
	// MaxSafeInteger is the largest seq / timestamp accepted. RFC 8785 numbers
	// are IEEE-754 doubles, so larger integers would not survive
	// canonicalisation in every implementation (hence seq is unix-micros,
	// not unix-nanos).
	MaxSafeInteger = phase.MaxSafeInteger
)

// Range limits for numeric fields. They exist to reject nonsense and keep
// later arithmetic (load ratios) far from overflow, not to judge a node.
const (
	maxCores          = 4096
	maxMemoryMB       = 1 << 24 // 16 TiB
	maxModuleBytes    = 1 << 40
	maxTimeoutSeconds = 7 * 24 * 3600
	maxJobs           = 1 << 20
	maxABIs           = 16
	maxTokenLen       = 64
)

// Limits are the per-job ceilings a node enforces.
type Limits struct {
	MaxModuleBytes    int64 `json:"max_module_bytes"`
	MaxMemoryMB       int   `json:"max_memory_mb"`
	MaxTimeoutSeconds int   `json:"max_timeout_seconds"`
	MaxConcurrentJobs int   `json:"max_concurrent_jobs"`
	MaxStdinBytes     int64 `json:"max_stdin_bytes"`   // largest stdin frame
	MaxJobsPerPeer    int   `json:"max_jobs_per_peer"` // accepted, unfinished jobs of one requester
}

// Load is the node's load when the record was signed.
type Load struct {
	RunningJobs int `json:"running_jobs"`
	QueuedJobs  int `json:"queued_jobs"`
}

// Record is a node's signed capability record.
type Record struct {
	Version        int      `json:"version"`
	PeerID         string   `json:"peer_id"`
	Arch           string   `json:"arch"` // Go GOARCH name; Sign normalises x86_64/aarch64
	OS             string   `json:"os"`
	CPUCores       int      `json:"cpu_cores"`
	MemoryMB       int      `json:"memory_mb"` // memory available to jobs
	Runtime        string   `json:"runtime"`
	RuntimeVersion string   `json:"runtime_version"`
	ABIs           []string `json:"abis"`
	Limits         Limits   `json:"limits"`
	Load           Load     `json:"load"`
	Seq            uint64   `json:"seq"`        // strictly increasing per node
	IssuedAt       int64    `json:"issued_at"`  // unix seconds
	ExpiresAt      int64    `json:"expires_at"` // unix seconds
	Signature      string   `json:"signature"`  // lowercase hex Ed25519 signature
}

// signedBody is Record without the signature: the part that is signed.
type signedBody struct {
	Version        int      `json:"version"`
	PeerID         string   `json:"peer_id"`
	Arch           string   `json:"arch"`
	OS             string   `json:"os"`
	CPUCores       int      `json:"cpu_cores"`
	MemoryMB       int      `json:"memory_mb"`
	Runtime        string   `json:"runtime"`
	RuntimeVersion string   `json:"runtime_version"`
	ABIs           []string `json:"abis"`
	Limits         Limits   `json:"limits"`
	Load           Load     `json:"load"`
	Seq            uint64   `json:"seq"`
	IssuedAt       int64    `json:"issued_at"`
	ExpiresAt      int64    `json:"expires_at"`
}

// Sentinel errors; every error from this package wraps exactly one of them,
// so callers (and the validator's OnReject hook) can classify failures.
var (
	ErrMalformed    = errors.New("malformed capability record")
	ErrTooLarge     = errors.New("capability record too large")
	ErrBadPeerID    = errors.New("peer id is not an Ed25519 identity peer id")
	ErrBadSignature = errors.New("bad capability record signature")
	ErrExpired      = errors.New("capability record expired")
	ErrNotYetValid  = errors.New("capability record issued in the future")
	ErrWrongPeer    = errors.New("capability record is for another peer")
	ErrBadKey       = errors.New("invalid capability record DHT key")
)

// FieldError reports a malformed field. It wraps ErrMalformed.
type FieldError struct {
	Field string // JSON name, dotted for nested fields ("limits.max_memory_mb")
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("capability record: field %q: %s", e.Field, e.Msg)
}

func (e *FieldError) Unwrap() error { return ErrMalformed }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// normArch is phase.NormalizeArch for values already validated (or for
// matching, where an unknown name simply matches nothing but itself).
func normArch(s string) string {
	if a, err := phase.NormalizeArch(s); err == nil {
		return a
	}
	return s
}

// Parse decodes a record strictly: at most MaxRecordSize bytes, exactly one
// JSON object, no unknown, duplicate or differently-cased keys, every
// required field present and in range. It does not check the signature or
// expiry; use Verify for that. The record is returned as signed (an arch
// alias is not rewritten, or the signature would no longer match).
func Parse(data []byte) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(data), MaxRecordSize)
	}
	f, err := strictjson.ParseObject(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	f.Only(topKeys...)
	const lim = MaxSafeInteger
	r := &Record{
		Version:        int(f.Int("version", true, -lim, lim)),
		PeerID:         f.String("peer_id", true),
		Arch:           f.String("arch", true),
		OS:             f.String("os", true),
		CPUCores:       int(f.Int("cpu_cores", true, -lim, lim)),
		MemoryMB:       int(f.Int("memory_mb", true, -lim, lim)),
		Runtime:        f.String("runtime", true),
		RuntimeVersion: f.String("runtime_version", true),
		ABIs:           f.Strings("abis", true, maxABIs),
		Seq:            uint64(f.Int("seq", true, 0, lim)),
		IssuedAt:       f.Int("issued_at", true, -lim, lim),
		ExpiresAt:      f.Int("expires_at", true, -lim, lim),
		Signature:      f.String("signature", true),
	}
	if l := f.Object("limits", true); l != nil {
		l.Only(limitsKeys...)
		r.Limits = Limits{
			MaxModuleBytes:    l.Int("max_module_bytes", true, -lim, lim),
			MaxMemoryMB:       int(l.Int("max_memory_mb", true, -lim, lim)),
			MaxTimeoutSeconds: int(l.Int("max_timeout_seconds", true, -lim, lim)),
			MaxConcurrentJobs: int(l.Int("max_concurrent_jobs", true, -lim, lim)),
			MaxStdinBytes:     l.Int("max_stdin_bytes", true, -lim, lim),
			MaxJobsPerPeer:    int(l.Int("max_jobs_per_peer", true, -lim, lim)),
		}
	}
	if l := f.Object("load", true); l != nil {
		l.Only(loadKeys...)
		r.Load = Load{
			RunningJobs: int(l.Int("running_jobs", true, -lim, lim)),
			QueuedJobs:  int(l.Int("queued_jobs", true, -lim, lim)),
		}
	}
	var fe *strictjson.FieldError
	if err := f.Err(); errors.As(err, &fe) {
		return nil, &FieldError{Field: fe.Path, Msg: fe.Msg}
	}
	if err := r.validate(true); err != nil {
		return nil, err
	}
	return r, nil
}

// Marshal returns the record's JSON wire form, refusing a record that peers
// would reject as too large.
func (r *Record) Marshal() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("marshal capability record: %w", err)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(b), MaxRecordSize)
	}
	return b, nil
}

// SigningBytes returns DomainPrefix followed by the RFC 8785 canonical JSON
// of the record without its signature: the exact bytes that are signed.
func (r *Record) SigningBytes() ([]byte, error) {
	body := signedBody{
		Version: r.Version, PeerID: r.PeerID, Arch: r.Arch, OS: r.OS,
		CPUCores: r.CPUCores, MemoryMB: r.MemoryMB, Runtime: r.Runtime,
		RuntimeVersion: r.RuntimeVersion, ABIs: r.ABIs, Limits: r.Limits,
		Load: r.Load, Seq: r.Seq, IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt,
	}
	c, err := canonical.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("canonicalise capability record: %w", err)
	}
	return append([]byte(DomainPrefix), c...), nil
}

// Sign normalises the arch, fills PeerID from the key when empty, checks the
// record is well-formed and fits MaxRecordSize, and signs it with priv, which
// must be the Ed25519 key of PeerID.
func (r *Record) Sign(priv crypto.PrivKey) error {
	if priv == nil {
		return errors.New("sign capability record: nil private key")
	}
	if priv.Type() != crypto.Ed25519 {
		return fmt.Errorf("sign capability record: key type %s: %w", priv.Type(), ErrBadPeerID)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("sign capability record: derive peer id: %w", err)
	}
	switch r.PeerID {
	case "":
		r.PeerID = id.String()
	case id.String():
	default:
		return fmt.Errorf("sign capability record: peer_id %s does not match signing key %s: %w", r.PeerID, id, ErrWrongPeer)
	}
	if r.Arch != "" {
		a, err := phase.NormalizeArch(r.Arch)
		if err != nil {
			return fmt.Errorf("sign capability record: %w", fieldErr("arch", "%v", err))
		}
		r.Arch = a
	}
	if err := r.validate(false); err != nil {
		return fmt.Errorf("sign capability record: %w", err)
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return fmt.Errorf("sign capability record: %w", err)
	}
	sig, err := priv.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign capability record: %w", err)
	}
	r.Signature = hex.EncodeToString(sig)
	if _, err := r.Marshal(); err != nil {
		r.Signature = ""
		return fmt.Errorf("sign capability record: %w", err)
	}
	return nil
}

// Verify checks a record completely: well-formed, its peer ID is an Ed25519
// identity peer ID, the signature is by that key, issued_at is not more than
// ClockSkew in the future and expires_at has not passed.
func Verify(r *Record, now time.Time) error {
	if r == nil {
		return fmt.Errorf("%w: nil record", ErrMalformed)
	}
	if err := r.validate(true); err != nil {
		return err
	}
	pub, err := Ed25519PeerKey(r.PeerID)
	if err != nil {
		return err
	}
	sig, _ := hex.DecodeString(r.Signature) // format checked by validate
	msg, err := r.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ok, err := pub.Verify(msg, sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: not signed by %s", ErrBadSignature, r.PeerID)
	}
	if r.IssuedAt > now.Add(ClockSkew).Unix() {
		return fmt.Errorf("%w: issued_at %d is %s ahead of local clock", ErrNotYetValid, r.IssuedAt,
			time.Unix(r.IssuedAt, 0).Sub(now).Round(time.Second))
	}
	if r.ExpiresAt <= now.Unix() {
		return fmt.Errorf("%w: expires_at %d is %s ago", ErrExpired, r.ExpiresAt,
			now.Sub(time.Unix(r.ExpiresAt, 0)).Round(time.Second))
	}
	return nil
}

// Ed25519PeerKey decodes a peer ID string and returns its public key, which
// must be embedded (identity multihash) and of type Ed25519.
func Ed25519PeerKey(s string) (crypto.PubKey, error) {
	id, err := peer.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadPeerID, s, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPeerID, s, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: %s has key type %s", ErrBadPeerID, s, pub.Type())
	}
	return pub, nil
}

// validate checks formats and ranges. withSig also requires a signature.
func (r *Record) validate(withSig bool) error {
	if r.Version != Version {
		return fieldErr("version", "got %d, want %d", r.Version, Version)
	}
	if r.PeerID == "" {
		return fieldErr("peer_id", "missing")
	}
	if len(r.PeerID) > 128 {
		return fieldErr("peer_id", "too long (%d chars)", len(r.PeerID))
	}
	id, err := peer.Decode(r.PeerID)
	if err != nil {
		return fieldErr("peer_id", "not a peer id: %v", err)
	}
	if id.String() != r.PeerID {
		// One spelling per peer, so a record cannot be re-keyed by re-encoding.
		return fieldErr("peer_id", "not in canonical form (want %s)", id)
	}
	if r.Arch == "" {
		return fieldErr("arch", "missing")
	}
	if _, err := phase.NormalizeArch(r.Arch); err != nil {
		return fieldErr("arch", "%v", err)
	}
	if err := checkToken("os", r.OS, false); err != nil {
		return err
	}
	if err := checkRange("cpu_cores", int64(r.CPUCores), 1, maxCores); err != nil {
		return err
	}
	if err := checkRange("memory_mb", int64(r.MemoryMB), 1, maxMemoryMB); err != nil {
		return err
	}
	if err := checkToken("runtime", r.Runtime, false); err != nil {
		return err
	}
	if err := checkToken("runtime_version", r.RuntimeVersion, true); err != nil {
		return err
	}
	if len(r.ABIs) == 0 {
		return fieldErr("abis", "missing or empty")
	}
	if len(r.ABIs) > maxABIs {
		return fieldErr("abis", "%d entries (max %d)", len(r.ABIs), maxABIs)
	}
	for i, a := range r.ABIs {
		f := fmt.Sprintf("abis[%d]", i)
		if err := checkToken(f, a, false); err != nil {
			return err
		}
		if slices.Contains(r.ABIs[:i], a) {
			return fieldErr(f, "duplicate %q", a)
		}
	}
	if err := checkRange("limits.max_module_bytes", r.Limits.MaxModuleBytes, 1, maxModuleBytes); err != nil {
		return err
	}
	if err := checkRange("limits.max_memory_mb", int64(r.Limits.MaxMemoryMB), 1, maxMemoryMB); err != nil {
		return err
	}
	if err := checkRange("limits.max_timeout_seconds", int64(r.Limits.MaxTimeoutSeconds), 1, maxTimeoutSeconds); err != nil {
		return err
	}
	if err := checkRange("limits.max_concurrent_jobs", int64(r.Limits.MaxConcurrentJobs), 1, maxJobs); err != nil {
		return err
	}
	if err := checkRange("limits.max_stdin_bytes", r.Limits.MaxStdinBytes, 0, maxModuleBytes); err != nil {
		return err
	}
	if err := checkRange("limits.max_jobs_per_peer", int64(r.Limits.MaxJobsPerPeer), 1, maxJobs); err != nil {
		return err
	}
	if err := checkRange("load.running_jobs", int64(r.Load.RunningJobs), 0, maxJobs); err != nil {
		return err
	}
	if err := checkRange("load.queued_jobs", int64(r.Load.QueuedJobs), 0, maxJobs); err != nil {
		return err
	}
	if r.Seq < 1 || r.Seq > MaxSafeInteger {
		return fieldErr("seq", "%d out of range [1, %d]", r.Seq, int64(MaxSafeInteger))
	}
	if err := checkRange("issued_at", r.IssuedAt, 1, MaxSafeInteger); err != nil {
		return err
	}
	if err := checkRange("expires_at", r.ExpiresAt, 1, MaxSafeInteger); err != nil {
		return err
	}
	if r.ExpiresAt <= r.IssuedAt {
		return fieldErr("expires_at", "%d is not after issued_at %d", r.ExpiresAt, r.IssuedAt)
	}
	if life := r.ExpiresAt - r.IssuedAt; life > int64(MaxLifetime/time.Second) {
		return fieldErr("expires_at", "lifetime %ds exceeds %s", life, MaxLifetime)
	}
	if withSig {
		if r.Signature == "" {
			return fieldErr("signature", "missing")
		}
		if len(r.Signature) != 128 || strings.ToLower(r.Signature) != r.Signature {
			return fieldErr("signature", "want 128 lowercase hex characters")
		}
		if _, err := hex.DecodeString(r.Signature); err != nil {
			return fieldErr("signature", "not hex: %v", err)
		}
	}
	return nil
}

func checkRange(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return fieldErr(field, "%d out of range [%d, %d]", v, lo, hi)
	}
	return nil
}

// checkToken requires 1..64 chars of [a-z0-9._+-] (upper case too when
// mixedCase): names that are compared, logged and used in DHT keys.
func checkToken(field, s string, mixedCase bool) error {
	if s == "" {
		return fieldErr(field, "missing")
	}
	if len(s) > maxTokenLen {
		return fieldErr(field, "too long (%d chars, max %d)", len(s), maxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '+', c == '-':
		case mixedCase && c >= 'A' && c <= 'Z':
		default:
			return fieldErr(field, "invalid character %q in %q", c, s)
		}
	}
	return nil
}

var (
	topKeys = []string{"version", "peer_id", "arch", "os", "cpu_cores", "memory_mb", "runtime",
		"runtime_version", "abis", "limits", "load", "seq", "issued_at", "expires_at", "signature"}
	limitsKeys = []string{"max_module_bytes", "max_memory_mb", "max_timeout_seconds", "max_concurrent_jobs", "max_stdin_bytes", "max_jobs_per_peer"}
	loadKeys   = []string{"running_jobs", "queued_jobs"}
)

package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/phase-protocol/plasm/node/manifest"
)

// Message is any control message. MessageType returns the value of its
// "type" member.
type Message interface{ MessageType() string }

// Offer is the first message of a job exchange, client → node.
type Offer struct {
	Type          string            `json:"type"`     // "offer"
	JobID         string            `json:"job_id"`   // 1–64 chars [A-Za-z0-9._-]
	Nonce         string            `json:"nonce"`    // 64 lowercase hex (32 random bytes)
	Manifest      manifest.Manifest `json:"manifest"` // validated by manifest.Manifest.Validate
	ModuleSize    int64             `json:"module_size"`
	StdinSize     int64             `json:"stdin_size"`
	ArgsCount     int               `json:"args_count"`              // 0–1024
	Arch          string            `json:"arch,omitempty"`          // preferred arch; parsed offers hold the Go name
	RequireArch   bool              `json:"require_arch,omitempty"`  // arch is a hard requirement
	Deterministic bool              `json:"deterministic,omitempty"` // fixed clock, seeded random
	Seed          int64             `json:"seed,omitempty"`          // only with deterministic
}

// Accepted is the node's yes to an offer.
type Accepted struct {
	Type       string        `json:"type"`        // "accepted"
	HaveModule bool          `json:"have_module"` // true: the client must not send the module frame
	Limits     AppliedLimits `json:"limits"`
}

// AppliedLimits are the limits the node will enforce, after clamping the
// manifest's requests to its own configuration.
type AppliedLimits struct {
	MemoryMB  int   `json:"memory_mb"`  // 1–32768
	TimeoutMS int64 `json:"timeout_ms"` // 1–3600000
	StdoutCap int   `json:"stdout_cap"` // ≥ 0: most stdout bytes the result will carry
	StderrCap int   `json:"stderr_cap"` // ≥ 0: most stderr bytes the result will carry
}

// Rejected is the node's no to an offer; it ends the exchange.
type Rejected struct {
	Type   string `json:"type"`   // "rejected"
	Reason string `json:"reason"` // one of Reasons()
	Detail string `json:"detail"` // human-readable, may be empty
}

// Payload follows an accepted offer, client → node. It is followed by the
// module raw frame (unless the node has the module) and the stdin raw frame
// (always, possibly empty).
type Payload struct {
	Type string   `json:"type"` // "payload"
	Args []string `json:"args"` // exactly args_count entries, none containing NUL
}

// Result ends a run, node → client. It is followed by the stdout raw frame
// and the stderr raw frame.
type Result struct {
	Type            string          `json:"type"`    // "result"
	Outcome         string          `json:"outcome"` // one of Outcomes()
	ExitCode        int             `json:"exit_code"`
	Detail          string          `json:"detail,omitempty"`
	StdoutSize      int64           `json:"stdout_size"` // length of the stdout frame that follows
	StderrSize      int64           `json:"stderr_size"` // length of the stderr frame that follows
	StdoutTruncated bool            `json:"stdout_truncated"`
	StderrTruncated bool            `json:"stderr_truncated"`
	WallTimeMS      int64           `json:"wall_time_ms"`
	QueueTimeMS     int64           `json:"queue_time_ms"`
	Receipt         json.RawMessage `json:"receipt"` // receipt v1 JSON object, compacted by the parser
}

// ErrorMsg ends an exchange at any step, from either side. It also
// implements error, so a reader can return it as one.
type ErrorMsg struct {
	Type   string `json:"type"`   // "error"
	Code   string `json:"code"`   // one of Codes()
	Detail string `json:"detail"` // human-readable, may be empty
}

// CapsRequest asks for a node's live capability record on /phase/caps/1.0.0.
type CapsRequest struct {
	Type string `json:"type"` // "caps_request"
}

// CapsResponse carries the signed capability record, kept raw here.
type CapsResponse struct {
	Type   string          `json:"type"`   // "caps"
	Record json.RawMessage `json:"record"` // JSON object, compacted by the parser
}

func (Offer) MessageType() string        { return TypeOffer }
func (Accepted) MessageType() string     { return TypeAccepted }
func (Rejected) MessageType() string     { return TypeRejected }
func (Payload) MessageType() string      { return TypePayload }
func (Result) MessageType() string       { return TypeResult }
func (ErrorMsg) MessageType() string     { return TypeError }
func (CapsRequest) MessageType() string  { return TypeCapsRequest }
func (CapsResponse) MessageType() string { return TypeCaps }

// Error describes the peer's error message; the detail is quoted because it
// is the peer's text.
func (m *ErrorMsg) Error() string {
	return "peer error " + m.Code + ": " + quoteDetail(m.Detail)
}

// The MarshalJSON methods fill in "type", so a zero Type field is fine; a
// Type that names another message is an error.

func (m Offer) MarshalJSON() ([]byte, error) {
	type plain Offer
	if err := fillType(&m.Type, TypeOffer); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func (m Accepted) MarshalJSON() ([]byte, error) {
	type plain Accepted
	if err := fillType(&m.Type, TypeAccepted); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func (m Rejected) MarshalJSON() ([]byte, error) {
	type plain Rejected
	if err := fillType(&m.Type, TypeRejected); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func (m Payload) MarshalJSON() ([]byte, error) {
	type plain Payload
	if err := fillType(&m.Type, TypePayload); err != nil {
		return nil, err
	}
	if m.Args == nil {
		m.Args = []string{} // null is not a valid args value
	}
	return encodeJSON(plain(m))
}

func (m Result) MarshalJSON() ([]byte, error) {
	type plain Result
	if err := fillType(&m.Type, TypeResult); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func (m ErrorMsg) MarshalJSON() ([]byte, error) {
	type plain ErrorMsg
	if err := fillType(&m.Type, TypeError); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func (m CapsRequest) MarshalJSON() ([]byte, error) {
	type plain CapsRequest
	if err := fillType(&m.Type, TypeCapsRequest); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func (m CapsResponse) MarshalJSON() ([]byte, error) {
	type plain CapsResponse
	if err := fillType(&m.Type, TypeCaps); err != nil {
		return nil, err
	}
	return encodeJSON(plain(m))
}

func fillType(t *string, want string) error {
	if *t != "" && *t != want {
		return fmt.Errorf("%s message has type field %s", want, echo(*t))
	}
	*t = want
	return nil
}

// encodeJSON marshals without HTML escaping: "<" stays "<", which keeps the
// bytes on the wire equal to what other languages' encoders produce.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Validate checks every member of the offer (WIRE-21, WIRE-23, WIRE-24).
func (m Offer) Validate() error {
	const t = TypeOffer
	if err := checkTypeField(t, m.Type); err != nil {
		return err
	}
	if err := checkJobID(m.JobID); err != nil {
		return fieldErr(t, "job_id", "%v", err)
	}
	if err := checkNonce(m.Nonce); err != nil {
		return fieldErr(t, "nonce", "%v", err)
	}
	if err := m.Manifest.Validate(); err != nil {
		return fmt.Errorf("%w: %s: field \"manifest\": %w", ErrInvalid, t, err)
	}
	if m.ModuleSize < 0 {
		return fieldErr(t, "module_size", "must be ≥ 0, got %d", m.ModuleSize)
	}
	if m.StdinSize < 0 {
		return fieldErr(t, "stdin_size", "must be ≥ 0, got %d", m.StdinSize)
	}
	if m.ArgsCount < 0 || m.ArgsCount > MaxArgs {
		return fieldErr(t, "args_count", "must be 0–%d, got %d", MaxArgs, m.ArgsCount)
	}
	if m.Arch != "" {
		if _, err := NormalizeArch(m.Arch); err != nil {
			return fieldErr(t, "arch", "%v", err)
		}
	} else if m.RequireArch {
		return fieldErr(t, "require_arch", "is true but arch is absent")
	}
	if m.Seed != 0 && !m.Deterministic {
		return fieldErr(t, "seed", "is set but deterministic is false")
	}
	return nil
}

// CheckPayload checks that a payload matches this offer: as many args as
// args_count announced (JOB-7).
func (m Offer) CheckPayload(p *Payload) error {
	if len(p.Args) != m.ArgsCount {
		return fieldErr(TypePayload, "args", "has %d entries, offer announced args_count %d", len(p.Args), m.ArgsCount)
	}
	return nil
}

// CheckAccepted checks that the node's applied limits do not exceed what
// this offer's manifest requested (JOB-11): a node may clamp down, never up.
func (m Offer) CheckAccepted(a *Accepted) error {
	if a.Limits.MemoryMB > m.Manifest.MemoryMB {
		return fieldErr(TypeAccepted, "limits.memory_mb", "%d exceeds the %d requested by the manifest", a.Limits.MemoryMB, m.Manifest.MemoryMB)
	}
	if req := int64(m.Manifest.TimeoutSeconds) * 1000; a.Limits.TimeoutMS > req {
		return fieldErr(TypeAccepted, "limits.timeout_ms", "%d exceeds the %d requested by the manifest", a.Limits.TimeoutMS, req)
	}
	return nil
}

// Validate checks the accepted message and its limits.
func (m Accepted) Validate() error {
	if err := checkTypeField(TypeAccepted, m.Type); err != nil {
		return err
	}
	return m.Limits.validate(TypeAccepted)
}

func (l AppliedLimits) validate(t string) error {
	if l.MemoryMB < 1 || l.MemoryMB > MaxMemoryMB {
		return fieldErr(t, "limits.memory_mb", "must be 1–%d, got %d", MaxMemoryMB, l.MemoryMB)
	}
	if l.TimeoutMS < 1 || l.TimeoutMS > MaxTimeoutMS {
		return fieldErr(t, "limits.timeout_ms", "must be 1–%d, got %d", MaxTimeoutMS, l.TimeoutMS)
	}
	if l.StdoutCap < 0 {
		return fieldErr(t, "limits.stdout_cap", "must be ≥ 0, got %d", l.StdoutCap)
	}
	if l.StderrCap < 0 {
		return fieldErr(t, "limits.stderr_cap", "must be ≥ 0, got %d", l.StderrCap)
	}
	return nil
}

// CheckResult checks that a result respects the output caps this accepted
// message announced (JOB-10).
func (m Accepted) CheckResult(r *Result) error {
	if r.StdoutSize > int64(m.Limits.StdoutCap) {
		return fieldErr(TypeResult, "stdout_size", "%d exceeds the accepted stdout_cap %d", r.StdoutSize, m.Limits.StdoutCap)
	}
	if r.StderrSize > int64(m.Limits.StderrCap) {
		return fieldErr(TypeResult, "stderr_size", "%d exceeds the accepted stderr_cap %d", r.StderrSize, m.Limits.StderrCap)
	}
	return nil
}

// Validate checks the rejection reason.
func (m Rejected) Validate() error {
	if err := checkTypeField(TypeRejected, m.Type); err != nil {
		return err
	}
	return checkEnum(TypeRejected, "reason", m.Reason, reasons)
}

// Validate checks the args.
func (m Payload) Validate() error {
	if err := checkTypeField(TypePayload, m.Type); err != nil {
		return err
	}
	if len(m.Args) > MaxArgs {
		return fieldErr(TypePayload, "args", "has %d entries, at most %d allowed", len(m.Args), MaxArgs)
	}
	for i, a := range m.Args {
		// WASI passes args as NUL-terminated strings: a NUL would cut the arg.
		if strings.IndexByte(a, 0) >= 0 {
			return fieldErr(TypePayload, "args["+strconv.Itoa(i)+"]", "contains a NUL character")
		}
	}
	return nil
}

// Validate checks outcome, exit code, sizes, timings and that the receipt is
// a JSON object.
func (m Result) Validate() error {
	const t = TypeResult
	if err := checkTypeField(t, m.Type); err != nil {
		return err
	}
	if err := checkEnum(t, "outcome", m.Outcome, outcomes); err != nil {
		return err
	}
	if m.Outcome == OutcomeExited && (m.ExitCode < 0 || m.ExitCode > MaxExitCode) {
		return fieldErr(t, "exit_code", "must be 0–%d when outcome is exited, got %d", MaxExitCode, m.ExitCode)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"stdout_size", m.StdoutSize}, {"stderr_size", m.StderrSize},
		{"wall_time_ms", m.WallTimeMS}, {"queue_time_ms", m.QueueTimeMS},
	} {
		if f.v < 0 {
			return fieldErr(t, f.name, "must be ≥ 0, got %d", f.v)
		}
	}
	return checkObject(t, "receipt", m.Receipt)
}

// Validate checks the error code.
func (m ErrorMsg) Validate() error {
	if err := checkTypeField(TypeError, m.Type); err != nil {
		return err
	}
	return checkEnum(TypeError, "code", m.Code, codes)
}

// Validate checks the type field only: a caps request has no other members.
func (m CapsRequest) Validate() error { return checkTypeField(TypeCapsRequest, m.Type) }

// Validate checks that the record is a JSON object.
func (m CapsResponse) Validate() error {
	if err := checkTypeField(TypeCaps, m.Type); err != nil {
		return err
	}
	return checkObject(TypeCaps, "record", m.Record)
}

func checkTypeField(want, got string) error {
	if got != "" && got != want {
		return fieldErr(want, "type", "is %s, want %q", echo(got), want)
	}
	return nil
}

func checkEnum(t, field, v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return fieldErr(t, field, "%s is not one of %s", echo(v), strings.Join(allowed, ", "))
	}
	return nil
}

func checkObject(t, field string, raw json.RawMessage) error {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(raw) {
		return fieldErr(t, field, "must be a JSON object")
	}
	return nil
}

func checkJobID(s string) error {
	if len(s) < 1 || len(s) > MaxJobIDLen {
		return fmt.Errorf("must be 1–%d characters, got %d", MaxJobIDLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("byte %d (%q) is not one of A-Z a-z 0-9 . _ -", i, c)
		}
	}
	return nil
}

func checkNonce(s string) error {
	if len(s) != NonceHexLen {
		return fmt.Errorf("must be %d lowercase hex characters, got %d characters", NonceHexLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("must be %d lowercase hex characters, byte %d is %q", NonceHexLen, i, c)
		}
	}
	return nil
}

func fieldErr(msgType, field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: field %q: %s", ErrInvalid, msgType, field, fmt.Sprintf(format, args...))
}

func quoteDetail(s string) string {
	const maxDetail = 512
	if len(s) > maxDetail {
		return strconv.Quote(s[:maxDetail]) + "…"
	}
	return strconv.Quote(s)
}

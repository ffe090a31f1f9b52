package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// Message is any control message. MessageType returns the value of its
// "type" member.
type Message interface{ MessageType() string }

// Offer is the first message of a job exchange, client → node.
type Offer struct {
	Type          string            `json:"type"`     // "offer"
	JobID         string            `json:"job_id"`   // 1–128 chars [A-Za-z0-9._:-]
	Nonce         string            `json:"nonce"`    // 64 lowercase hex (32 random bytes)
	Manifest      manifest.Manifest `json:"manifest"` // validated by manifest.Manifest.Validate
	ModuleSize    int64             `json:"module_size"`
	StdinSize     int64             `json:"stdin_size"`
	ArgsCount     int               `json:"args_count"`              // 0–1024
	Arch          string            `json:"arch,omitempty"`          // preferred arch; parsed offers hold the Go name
	RequireArch   bool              `json:"require_arch,omitempty"`  // arch is a hard requirement
	Deterministic bool              `json:"deterministic,omitempty"` // fixed clock, seeded random
	Seed          int64             `json:"seed,omitempty"`          // only with deterministic
	Progress      bool              `json:"progress,omitempty"`      // the client reads progress messages (JOB-18)
}

// Accepted is the node's yes to an offer.
type Accepted struct {
	Type       string        `json:"type"`        // "accepted"
	HaveModule bool          `json:"have_module"` // true: the client must not send the module frame
	Limits     AppliedLimits `json:"limits"`
	// ProgressMS, when > 0, promises a progress message at least this often
	// while the job runs; only in answer to an offer with progress (JOB-18).
	ProgressMS int64 `json:"progress_ms,omitempty"`
}

// Progress tells the client that the node is still running its job
// (JOB-18). It is sent only to a client whose offer asked for it.
type Progress struct {
	Type      string `json:"type"`       // "progress"
	ElapsedMS int64  `json:"elapsed_ms"` // since the stdin frame arrived
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
func (Progress) MessageType() string     { return TypeProgress }

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

func (m Progress) MarshalJSON() ([]byte, error) {
	type plain Progress
	if err := fillType(&m.Type, TypeProgress); err != nil {
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
		return fmt.Errorf("%s message has type field %s", want, phase.Quote(*t))
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
	if err := phase.CheckJobID(m.JobID); err != nil {
		return fieldErr(t, "job_id", "%v", err)
	}
	if err := phase.CheckNonce(m.Nonce); err != nil {
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
	if m.ArgsCount < 0 || m.ArgsCount > phase.MaxArgs {
		return fieldErr(t, "args_count", "must be 0–%d, got %d", phase.MaxArgs, m.ArgsCount)
	}
	return asFieldErr(t, phase.CheckArchSeed(m.Arch, m.RequireArch, m.Deterministic, m.Seed))
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
	if m.ProgressMS < 0 {
		return fieldErr(TypeAccepted, "progress_ms", "must be ≥ 0, got %d", m.ProgressMS)
	}
	return m.Limits.validate(TypeAccepted)
}

// Validate checks the elapsed time.
func (m Progress) Validate() error {
	if err := checkTypeField(TypeProgress, m.Type); err != nil {
		return err
	}
	if m.ElapsedMS < 0 {
		return fieldErr(TypeProgress, "elapsed_ms", "must be ≥ 0, got %d", m.ElapsedMS)
	}
	return nil
}

func (l AppliedLimits) validate(t string) error {
	if l.MemoryMB < phase.MinMemoryMB || l.MemoryMB > phase.MaxMemoryMB {
		return fieldErr(t, "limits.memory_mb", "must be %d–%d, got %d", phase.MinMemoryMB, phase.MaxMemoryMB, l.MemoryMB)
	}
	if l.TimeoutMS < 1 || l.TimeoutMS > phase.MaxTimeoutMS {
		return fieldErr(t, "limits.timeout_ms", "must be 1–%d, got %d", phase.MaxTimeoutMS, l.TimeoutMS)
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
	return checkEnum(TypeRejected, "reason", m.Reason, phase.Reasons())
}

// Validate checks the args.
func (m Payload) Validate() error {
	if err := checkTypeField(TypePayload, m.Type); err != nil {
		return err
	}
	return asFieldErr(TypePayload, phase.CheckArgs(m.Args))
}

// Validate checks outcome, exit code, sizes, timings and that the receipt is
// a JSON object.
func (m Result) Validate() error {
	const t = TypeResult
	if err := checkTypeField(t, m.Type); err != nil {
		return err
	}
	if err := checkEnum(t, "outcome", m.Outcome, phase.Outcomes()); err != nil {
		return err
	}
	if m.Outcome == phase.OutcomeExited && (m.ExitCode < 0 || m.ExitCode > phase.MaxExitCode) {
		return fieldErr(t, "exit_code", "must be 0–%d when outcome is exited, got %d", phase.MaxExitCode, m.ExitCode)
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
	return checkEnum(TypeError, "code", m.Code, phase.Codes())
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
		return fieldErr(want, "type", "is %s, want %q", phase.Quote(got), want)
	}
	return nil
}

func checkEnum(t, field, v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return fieldErr(t, field, "%s is not one of %s", phase.Quote(v), strings.Join(allowed, ", "))
	}
	return nil
}

func checkObject(t, field string, raw json.RawMessage) error {
	v, err := strictjson.Parse(raw)
	if err != nil || v.Kind != strictjson.Object {
		return fieldErr(t, field, "must be a JSON object")
	}
	return nil
}

func fieldErr(msgType, field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: field %q: %s", ErrInvalid, msgType, field, fmt.Sprintf(format, args...))
}

// asFieldErr words a shared rule's *phase.FieldError as this message's.
func asFieldErr(msgType string, err error) error {
	var fe *phase.FieldError
	if errors.As(err, &fe) {
		return fieldErr(msgType, fe.Field, "%s", fe.Msg)
	}
	return err
}

func quoteDetail(s string) string {
	const maxDetail = 512
	if len(s) > maxDetail {
		return strconv.Quote(s[:maxDetail]) + "…"
	}
	return strconv.Quote(s)
}

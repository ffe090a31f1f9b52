package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/phase-protocol/plasm/node/manifest"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// WriteControl marshals msg to JSON and writes it as one control frame. A
// msg with a Validate method (every message type here) is validated first,
// so an invalid message never reaches the wire; pass a map or
// json.RawMessage to send arbitrary JSON (conformance tests do).
func WriteControl(w io.Writer, msg any) error {
	frame, err := AppendControl(nil, msg)
	if err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("write control message: %w", err)
	}
	return nil
}

// AppendControl appends msg as one control frame (length prefix and JSON
// body) to dst, validating it first as WriteControl does.
func AppendControl(dst []byte, msg any) ([]byte, error) {
	if v, ok := msg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("write control message: %w", err)
		}
	}
	body, err := encodeJSON(msg)
	if err != nil {
		return nil, fmt.Errorf("write control message: %w", err)
	}
	if len(body) == 0 || body[0] != '{' {
		return nil, fmt.Errorf("write control message: %T does not encode to a JSON object", msg)
	}
	if len(body) > MaxControlFrame {
		return nil, fmt.Errorf("write control message: %d bytes exceeds cap %d: %w", len(body), MaxControlFrame, ErrTooLarge)
	}
	return AppendFrame(dst, body), nil
}

// ReadControl reads one control frame (at most MaxControlFrame bytes) and
// parses it. It returns *Offer, *Accepted, *Rejected, *Payload, *Progress,
// *Result, *ErrorMsg, *CapsRequest or *CapsResponse.
func ReadControl(r io.Reader) (Message, error) {
	body, err := ReadFrame(r, MaxControlFrame, KindControl)
	if err != nil {
		return nil, err
	}
	return ParseControl(body)
}

// ReadExpect reads a control message and checks that its type is one of
// types; otherwise the error (wrapping ErrUnexpected) says e.g. "expected
// accepted|rejected, got result". An error message from the peer, when not
// among types, is returned as an error wrapping the *ErrorMsg (use
// errors.As), since a peer may end the exchange with one at any step.
func ReadExpect(r io.Reader, types ...string) (Message, error) {
	msg, err := ReadControl(r)
	if err != nil {
		return nil, err
	}
	got := msg.MessageType()
	if slices.Contains(types, got) {
		return msg, nil
	}
	want := strings.Join(types, "|")
	if em, ok := msg.(*ErrorMsg); ok {
		return nil, fmt.Errorf("expected %s, got error: %w", want, em)
	}
	return nil, fmt.Errorf("%w: expected %s, got %s", ErrUnexpected, want, got)
}

// ParseControl parses a control frame body of any known type.
func ParseControl(body []byte) (Message, error) {
	f, typ, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	switch typ {
	case TypeOffer:
		return asMessage(decodeOffer(f))
	case TypeAccepted:
		return asMessage(decodeAccepted(f))
	case TypeRejected:
		return asMessage(decodeRejected(f))
	case TypePayload:
		return asMessage(decodePayload(f))
	case TypeResult:
		return asMessage(decodeResult(f))
	case TypeError:
		return asMessage(decodeError(f))
	case TypeCapsRequest:
		return asMessage(decodeCapsRequest(f))
	case TypeCaps:
		return asMessage(decodeCapsResponse(f))
	case TypeProgress:
		return asMessage(decodeProgress(f))
	}
	return nil, fmt.Errorf("%w: unknown message type %s", ErrInvalid, phase.Quote(typ))
}

// asMessage keeps a nil *T from becoming a non-nil Message.
func asMessage[M Message](m M, err error) (Message, error) {
	if err != nil {
		return nil, err
	}
	return m, nil
}

// The typed parsers accept a control frame body of exactly one type; any
// other type is an ErrUnexpected error.

func ParseOffer(body []byte) (*Offer, error) { return parseAs(body, TypeOffer, decodeOffer) }
func ParseAccepted(body []byte) (*Accepted, error) {
	return parseAs(body, TypeAccepted, decodeAccepted)
}
func ParseRejected(body []byte) (*Rejected, error) {
	return parseAs(body, TypeRejected, decodeRejected)
}
func ParsePayload(body []byte) (*Payload, error) { return parseAs(body, TypePayload, decodePayload) }
func ParseResult(body []byte) (*Result, error)   { return parseAs(body, TypeResult, decodeResult) }
func ParseError(body []byte) (*ErrorMsg, error)  { return parseAs(body, TypeError, decodeError) }
func ParseCapsRequest(body []byte) (*CapsRequest, error) {
	return parseAs(body, TypeCapsRequest, decodeCapsRequest)
}
func ParseProgress(body []byte) (*Progress, error) {
	return parseAs(body, TypeProgress, decodeProgress)
}
func ParseCapsResponse(body []byte) (*CapsResponse, error) {
	return parseAs(body, TypeCaps, decodeCapsResponse)
}

func parseAs[T any](body []byte, want string, decode func(*strictjson.Fields) (*T, error)) (*T, error) {
	f, typ, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, fmt.Errorf("%w: expected %s, got %s", ErrUnexpected, want, phase.Quote(typ))
	}
	return decode(f)
}

// invalid words a decoding error as this message's, wrapping ErrInvalid.
func invalid(msgType string, err error) error {
	var fe *strictjson.FieldError
	if errors.As(err, &fe) {
		return fieldErr(msgType, fe.Path, "%s", fe.Msg)
	}
	return fmt.Errorf("%w: %s: %v", ErrInvalid, msgType, err)
}

func decodeOffer(f *strictjson.Fields) (*Offer, error) {
	m := &Offer{Type: TypeOffer}
	m.JobID = f.String("job_id", true)
	m.Nonce = f.String("nonce", true)
	mf := f.Object("manifest", true)
	m.ModuleSize = f.Int64("module_size", true)
	m.StdinSize = f.Int64("stdin_size", true)
	m.ArgsCount = int(f.Int64("args_count", true))
	m.Arch = f.String("arch", false)
	m.RequireArch = f.Bool("require_arch", false)
	m.Deterministic = f.Bool("deterministic", false)
	m.Seed = f.Int64("seed", false)
	m.Progress = f.Bool("progress", false)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeOffer, err)
	}
	man, err := manifest.FromFields(mf)
	var fe *strictjson.FieldError
	switch {
	case errors.As(err, &fe): // names the member inside the manifest
		return nil, fieldErr(TypeOffer, fe.Path, "%s", fe.Msg)
	case err != nil:
		return nil, fmt.Errorf("%w: offer: field \"manifest\": %w", ErrInvalid, err)
	}
	m.Manifest = man
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.Arch != "" {
		m.Arch, _ = phase.NormalizeArch(m.Arch) // Validate checked it
	}
	return m, nil
}

func decodeAccepted(f *strictjson.Fields) (*Accepted, error) {
	m := &Accepted{Type: TypeAccepted}
	m.HaveModule = f.Bool("have_module", true)
	if l := f.Object("limits", true); l != nil {
		m.Limits.MemoryMB = int(l.Int64("memory_mb", true))
		m.Limits.TimeoutMS = l.Int64("timeout_ms", true)
		m.Limits.StdoutCap = int(l.Int64("stdout_cap", true))
		m.Limits.StderrCap = int(l.Int64("stderr_cap", true))
	}
	m.ProgressMS = f.Int64("progress_ms", false)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeAccepted, err)
	}
	return validated(m)
}

func decodeRejected(f *strictjson.Fields) (*Rejected, error) {
	m := &Rejected{Type: TypeRejected}
	m.Reason = f.String("reason", true)
	m.Detail = f.String("detail", true)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeRejected, err)
	}
	return validated(m)
}

func decodePayload(f *strictjson.Fields) (*Payload, error) {
	m := &Payload{Type: TypePayload}
	m.Args = f.Strings("args", true, phase.MaxArgs)
	if err := f.Err(); err != nil {
		return nil, invalid(TypePayload, err)
	}
	return validated(m)
}

func decodeResult(f *strictjson.Fields) (*Result, error) {
	m := &Result{Type: TypeResult}
	m.Outcome = f.String("outcome", true)
	m.ExitCode = int(f.Int64("exit_code", true))
	m.Detail = f.String("detail", false)
	m.StdoutSize = f.Int64("stdout_size", true)
	m.StderrSize = f.Int64("stderr_size", true)
	m.StdoutTruncated = f.Bool("stdout_truncated", true)
	m.StderrTruncated = f.Bool("stderr_truncated", true)
	m.WallTimeMS = f.Int64("wall_time_ms", true)
	m.QueueTimeMS = f.Int64("queue_time_ms", true)
	m.Receipt = f.Compact("receipt", true)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeResult, err)
	}
	return validated(m)
}

func decodeError(f *strictjson.Fields) (*ErrorMsg, error) {
	m := &ErrorMsg{Type: TypeError}
	m.Code = f.String("code", true)
	m.Detail = f.String("detail", true)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeError, err)
	}
	return validated(m)
}

func decodeProgress(f *strictjson.Fields) (*Progress, error) {
	m := &Progress{Type: TypeProgress}
	m.ElapsedMS = f.Int64("elapsed_ms", true)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeProgress, err)
	}
	return validated(m)
}

func decodeCapsRequest(*strictjson.Fields) (*CapsRequest, error) {
	return &CapsRequest{Type: TypeCapsRequest}, nil
}

func decodeCapsResponse(f *strictjson.Fields) (*CapsResponse, error) {
	m := &CapsResponse{Type: TypeCaps}
	m.Record = f.Compact("record", true)
	if err := f.Err(); err != nil {
		return nil, invalid(TypeCaps, err)
	}
	return validated(m)
}

// validated returns m, or nil and the error if it does not validate.
func validated[T any, PT interface {
	*T
	Validate() error
}](m PT) (PT, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseObject reads body as one strict JSON object (strictjson: UTF-8, no
// duplicate member names at any depth, nothing after it) and returns its
// members and its "type".
func parseObject(body []byte) (*strictjson.Fields, string, error) {
	v, err := strictjson.Parse(body)
	switch {
	case err != nil && len(bytes.Trim(body, " \t\r\n")) == 0:
		return nil, "", fmt.Errorf("%w: control message is empty", ErrInvalid)
	case err != nil:
		return nil, "", fmt.Errorf("%w: control message is not valid JSON: %v", ErrInvalid, err)
	case v.Kind != strictjson.Object:
		return nil, "", fmt.Errorf("%w: control message is not a JSON object, got %s", ErrInvalid, v.Kind)
	}
	f, _ := v.Fields()
	if !f.Has("type") {
		return nil, "", fmt.Errorf("%w: control message has no \"type\" member", ErrInvalid)
	}
	typ := f.String("type", true)
	if err := f.Err(); err != nil {
		return nil, "", fmt.Errorf("%w: control message: %v", ErrInvalid, err)
	}
	return f, typ, nil
}

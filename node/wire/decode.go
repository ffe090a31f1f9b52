package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/node/manifest"
)

// WriteControl marshals msg to JSON and writes it as one control frame. A
// msg with a Validate method (every message type here) is validated first,
// so an invalid message never reaches the wire; pass a map or
// json.RawMessage to send arbitrary JSON (conformance tests do).
func WriteControl(w io.Writer, msg any) error {
	if v, ok := msg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("write control message: %w", err)
		}
	}
	body, err := encodeJSON(msg)
	if err != nil {
		return fmt.Errorf("write control message: %w", err)
	}
	if len(body) == 0 || body[0] != '{' {
		return fmt.Errorf("write control message: %T does not encode to a JSON object", msg)
	}
	if len(body) > MaxControlFrame {
		return fmt.Errorf("write control message: %d bytes exceeds cap %d: %w", len(body), MaxControlFrame, ErrTooLarge)
	}
	return WriteFrame(w, body)
}

// ReadControl reads one control frame (at most MaxControlFrame bytes) and
// parses it. It returns *Offer, *Accepted, *Rejected, *Payload, *Result,
// *ErrorMsg, *CapsRequest or *CapsResponse.
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
	}
	return nil, fmt.Errorf("%w: unknown message type %s", ErrInvalid, echo(typ))
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
func ParseCapsResponse(body []byte) (*CapsResponse, error) {
	return parseAs(body, TypeCaps, decodeCapsResponse)
}

func parseAs[T any](body []byte, want string, decode func(*fields) (*T, error)) (*T, error) {
	f, typ, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	if typ != want {
		return nil, fmt.Errorf("%w: expected %s, got %s", ErrUnexpected, want, echo(typ))
	}
	return decode(f)
}

func decodeOffer(f *fields) (*Offer, error) {
	m := &Offer{Type: TypeOffer}
	m.JobID = f.str("job_id", true)
	m.Nonce = f.str("nonce", true)
	if raw := f.object("manifest", true); raw != nil {
		mf, err := parseManifest(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: offer: field \"manifest\": %w", ErrInvalid, err)
		}
		m.Manifest = mf
	}
	m.ModuleSize = f.int64("module_size", true)
	m.StdinSize = f.int64("stdin_size", true)
	m.ArgsCount = f.int("args_count", true)
	m.Arch = f.str("arch", false)
	m.RequireArch = f.boolean("require_arch", false)
	m.Deterministic = f.boolean("deterministic", false)
	m.Seed = f.int64("seed", false)
	if f.err != nil {
		return nil, f.err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if m.Arch != "" {
		m.Arch, _ = NormalizeArch(m.Arch) // Validate checked it
	}
	return m, nil
}

// parseManifest applies the manifest package's strict rules, after checking
// that every member name is exactly one the manifest defines: encoding/json
// underneath would also take "CPU_CORES" for cpu_cores (WIRE-15).
func parseManifest(raw []byte) (manifest.Manifest, error) {
	members, err := scanObject(raw)
	if err != nil {
		return manifest.Manifest{}, err
	}
	names := manifestNames()
	for k := range members {
		if !slices.Contains(names, k) {
			return manifest.Manifest{}, fmt.Errorf("manifest: unknown field %s", echo(k))
		}
	}
	return manifest.Parse(raw)
}

// manifestNames lists the JSON member names of manifest.Manifest.
var manifestNames = sync.OnceValue(func() []string {
	var names []string
	t := reflect.TypeFor[manifest.Manifest]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
})

func decodeAccepted(f *fields) (*Accepted, error) {
	m := &Accepted{Type: TypeAccepted}
	m.HaveModule = f.boolean("have_module", true)
	if l := f.sub("limits"); l != nil {
		m.Limits.MemoryMB = l.int("memory_mb", true)
		m.Limits.TimeoutMS = l.int64("timeout_ms", true)
		m.Limits.StdoutCap = l.int("stdout_cap", true)
		m.Limits.StderrCap = l.int("stderr_cap", true)
		f.keep(l.err)
	}
	if f.err != nil {
		return nil, f.err
	}
	return validated(m)
}

func decodeRejected(f *fields) (*Rejected, error) {
	m := &Rejected{Type: TypeRejected}
	m.Reason = f.str("reason", true)
	m.Detail = f.str("detail", true)
	if f.err != nil {
		return nil, f.err
	}
	return validated(m)
}

func decodePayload(f *fields) (*Payload, error) {
	m := &Payload{Type: TypePayload}
	m.Args = f.strings("args", MaxArgs)
	if f.err != nil {
		return nil, f.err
	}
	return validated(m)
}

func decodeResult(f *fields) (*Result, error) {
	m := &Result{Type: TypeResult}
	m.Outcome = f.str("outcome", true)
	m.ExitCode = f.int("exit_code", true)
	m.Detail = f.str("detail", false)
	m.StdoutSize = f.int64("stdout_size", true)
	m.StderrSize = f.int64("stderr_size", true)
	m.StdoutTruncated = f.boolean("stdout_truncated", true)
	m.StderrTruncated = f.boolean("stderr_truncated", true)
	m.WallTimeMS = f.int64("wall_time_ms", true)
	m.QueueTimeMS = f.int64("queue_time_ms", true)
	m.Receipt = f.object("receipt", true)
	if f.err != nil {
		return nil, f.err
	}
	return validated(m)
}

func decodeError(f *fields) (*ErrorMsg, error) {
	m := &ErrorMsg{Type: TypeError}
	m.Code = f.str("code", true)
	m.Detail = f.str("detail", true)
	if f.err != nil {
		return nil, f.err
	}
	return validated(m)
}

func decodeCapsRequest(*fields) (*CapsRequest, error) {
	return &CapsRequest{Type: TypeCapsRequest}, nil
}

func decodeCapsResponse(f *fields) (*CapsResponse, error) {
	m := &CapsResponse{Type: TypeCaps}
	m.Record = f.object("record", true)
	if f.err != nil {
		return nil, f.err
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

// parseObject checks that body is one I-JSON object (UTF-8, no duplicate
// member names at any depth, nothing after it) and returns its members and
// its "type".
func parseObject(body []byte) (*fields, string, error) {
	if !utf8.Valid(body) {
		return nil, "", fmt.Errorf("%w: control message is not valid UTF-8", ErrInvalid)
	}
	if !json.Valid(body) {
		if len(bytes.TrimLeft(body, jsonSpace)) == 0 {
			return nil, "", fmt.Errorf("%w: control message is empty", ErrInvalid)
		}
		err := json.Unmarshal(body, new(any)) // only for its description
		return nil, "", fmt.Errorf("%w: control message is not valid JSON: %v", ErrInvalid, err)
	}
	m, err := scanObject(body)
	if err != nil {
		return nil, "", err
	}
	raw, ok := m["type"]
	if !ok {
		return nil, "", fmt.Errorf("%w: control message has no \"type\" member", ErrInvalid)
	}
	typ, ok := jsonString(raw)
	if !ok {
		return nil, "", fmt.Errorf("%w: control message: field \"type\" must be a string, got %s", ErrInvalid, jsonKind(raw))
	}
	return &fields{msg: typ, m: m}, typ, nil
}

const jsonSpace = " \t\r\n"

// scanObject returns the members of the object that body (valid JSON) holds,
// and rejects any object, at any depth, that repeats a member name:
// encoding/json would silently keep the last, another implementation the
// first. Values are sub-slices of body.
func scanObject(body []byte) (map[string]json.RawMessage, error) {
	type level struct {
		obj, wantKey bool
		keys         []string
		set          map[string]struct{} // once keys grows past a few
	}
	i := len(body) - len(bytes.TrimLeft(body, jsonSpace))
	if body[i] != '{' {
		return nil, fmt.Errorf("%w: control message is not a JSON object", ErrInvalid)
	}
	members := make(map[string]json.RawMessage)
	var stack []*level
	var key string
	valStart := -1
	endMember := func(at int) {
		if valStart >= 0 {
			members[key] = bytes.TrimRight(body[valStart:at], jsonSpace)
			valStart = -1
		}
	}
	for ; i < len(body); i++ {
		switch body[i] {
		case '"':
			end := stringEnd(body, i)
			top := stack[len(stack)-1]
			if top.obj && top.wantKey {
				k, _ := jsonString(body[i:end])
				if err := addKey(&top.keys, &top.set, k); err != nil {
					return nil, err
				}
				top.wantKey = false
				if len(stack) == 1 {
					key = k
					j := end + len(body[end:]) - len(bytes.TrimLeft(body[end:], jsonSpace)) + 1 // past ':'
					valStart = j + len(body[j:]) - len(bytes.TrimLeft(body[j:], jsonSpace))
				}
			}
			i = end - 1
		case '{':
			stack = append(stack, &level{obj: true, wantKey: true})
		case '[':
			stack = append(stack, &level{})
		case '}', ']':
			if len(stack) == 1 {
				endMember(i)
				return members, nil // json.Valid: only whitespace follows
			}
			stack = stack[:len(stack)-1]
		case ',':
			if top := stack[len(stack)-1]; top.obj {
				top.wantKey = true
				if len(stack) == 1 {
					endMember(i)
				}
			}
		}
	}
	return members, nil // unreachable for valid JSON
}

func addKey(keys *[]string, set *map[string]struct{}, k string) error {
	dup := func() error {
		return fmt.Errorf("%w: control message repeats member name %s", ErrInvalid, echo(k))
	}
	if *set != nil {
		if _, ok := (*set)[k]; ok {
			return dup()
		}
		(*set)[k] = struct{}{}
		return nil
	}
	if slices.Contains(*keys, k) {
		return dup()
	}
	*keys = append(*keys, k)
	if len(*keys) > 16 {
		*set = make(map[string]struct{}, 2*len(*keys))
		for _, k := range *keys {
			(*set)[k] = struct{}{}
		}
	}
	return nil
}

// stringEnd returns the index just past the string literal starting at
// body[i] (a quote) in valid JSON.
func stringEnd(body []byte, i int) int {
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(body)
}

// jsonString decodes a JSON string literal; ok is false for other values.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // valid JSON: no escapes, no control bytes
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// fields decodes members of one JSON object by exact name (encoding/json
// would also match "JOB_ID" to job_id). The first error sticks; later calls
// return zero values.
type fields struct {
	msg    string // message type, for errors
	prefix string // "limits." inside a nested object
	m      map[string]json.RawMessage
	err    error
}

func (f *fields) keep(err error) {
	if f.err == nil {
		f.err = err
	}
}

func (f *fields) fail(name, format string, args ...any) {
	f.keep(fieldErr(f.msg, f.prefix+name, format, args...))
}

// get returns a member's raw value, or nil when absent (an error if
// required). null is never a valid value for a defined member.
func (f *fields) get(name string, required bool) json.RawMessage {
	if f.err != nil {
		return nil
	}
	raw, ok := f.m[name]
	if !ok {
		if required {
			f.fail(name, "missing")
		}
		return nil
	}
	if raw[0] == 'n' {
		f.fail(name, "must not be null")
		return nil
	}
	return raw
}

func (f *fields) str(name string, required bool) string {
	raw := f.get(name, required)
	if raw == nil {
		return ""
	}
	s, ok := jsonString(raw)
	if !ok {
		f.fail(name, "must be a string, got %s", jsonKind(raw))
	}
	return s
}

func (f *fields) int64(name string, required bool) int64 {
	return f.intN(name, required, 64)
}

func (f *fields) int(name string, required bool) int {
	return int(f.intN(name, required, strconv.IntSize))
}

func (f *fields) intN(name string, required bool, bits int) int64 {
	raw := f.get(name, required)
	if raw == nil {
		return 0
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		f.fail(name, "must be an integer, got %s", jsonKind(raw))
		return 0
	}
	// JSON grammar was checked already; ParseInt rejects fractions and
	// exponents, which the protocol does not allow in integers.
	v, err := strconv.ParseInt(string(raw), 10, bits)
	if err != nil {
		f.fail(name, "must be an integer in the signed %d-bit range without fraction or exponent, got %s", bits, echo(string(raw)))
		return 0
	}
	return v
}

func (f *fields) boolean(name string, required bool) bool {
	raw := f.get(name, required)
	if raw == nil {
		return false
	}
	switch string(raw) {
	case "true":
		return true
	case "false":
		return false
	}
	f.fail(name, "must be true or false, got %s", jsonKind(raw))
	return false
}

// object returns a compacted copy of an object member.
func (f *fields) object(name string, required bool) json.RawMessage {
	raw := f.get(name, required)
	if raw == nil {
		return nil
	}
	if raw[0] != '{' {
		f.fail(name, "must be a JSON object, got %s", jsonKind(raw))
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		f.fail(name, "%v", err)
		return nil
	}
	return buf.Bytes()
}

// sub returns the members of a required nested object.
func (f *fields) sub(name string) *fields {
	raw := f.object(name, true)
	if raw == nil {
		return nil
	}
	m, err := scanObject(raw)
	if err != nil {
		f.keep(err)
		return nil
	}
	return &fields{msg: f.msg, prefix: f.prefix + name + ".", m: m}
}

// strings returns a required array of strings of at most max entries; an
// empty array is a non-nil empty slice.
func (f *fields) strings(name string, max int) []string {
	raw := f.get(name, true)
	if raw == nil {
		return nil
	}
	if raw[0] != '[' {
		f.fail(name, "must be an array of strings, got %s", jsonKind(raw))
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		f.fail(name, "%v", err)
		return nil
	}
	if len(elems) > max {
		f.fail(name, "has %d entries, at most %d allowed", len(elems), max)
		return nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		var ok bool
		if out[i], ok = jsonString(e); !ok {
			f.fail(name+"["+strconv.Itoa(i)+"]", "must be a string, got %s", jsonKind(e))
			return nil
		}
	}
	return out
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

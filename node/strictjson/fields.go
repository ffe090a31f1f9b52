package strictjson

import (
	"bytes"
	"fmt"
	"strconv"
)

// FieldError is a member that is missing, null, of the wrong type, out of
// range or not allowed. Path names it as written in the document, dotted
// for nested members and indexed for array entries ("limits.memory_mb",
// "args[3]").
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Path, e.Msg) }

// Fields reads the members of one object by exact name. Every accessor
// returns the zero value once an error has happened, and the first error
// sticks (Err), so a decoder can read all members and check once.
//
// null is never a valid value for a member read through an accessor: a
// member that is present as null is an error, not an absent member.
//
// A nested reader (Object) shares its parent's error, so the first error
// anywhere in the document is the one reported.
type Fields struct {
	obj    *Value
	prefix string
	st     *state
}

type state struct{ err *FieldError }

// Fields returns a reader for v's members; v must be an object.
func (v *Value) Fields() (*Fields, error) {
	if v.Kind != Object {
		return nil, &FieldError{Path: "", Msg: "must be a JSON object, got " + v.Kind.String()}
	}
	return &Fields{obj: v, st: &state{}}, nil
}

// ParseObject parses data as one strict JSON value that must be an object.
func ParseObject(data []byte) (*Fields, error) {
	v, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if v.Kind != Object {
		return nil, &SyntaxError{Msg: "want a JSON object, got " + v.Kind.String()}
	}
	return &Fields{obj: &v, st: &state{}}, nil
}

// Err is the first error of any accessor, as a *FieldError, or nil.
func (f *Fields) Err() error {
	if f.st.err == nil {
		return nil
	}
	return f.st.err
}

// Fail records an error about member name (unless one is recorded already),
// for checks a decoder makes itself.
func (f *Fields) Fail(name, format string, a ...any) {
	if f.st.err == nil {
		f.st.err = &FieldError{Path: f.prefix + name, Msg: fmt.Sprintf(format, a...)}
	}
}

// Has reports whether the object has a member called name.
func (f *Fields) Has(name string) bool { return f.lookup(name) != nil }

// Names returns the member names in document order.
func (f *Fields) Names() []string {
	out := make([]string, len(f.obj.Members))
	for i, m := range f.obj.Members {
		out[i] = m.Name
	}
	return out
}

// Only fails on the first member whose name is not in allowed: for
// documents that allow no unknown members (receipts, records, manifests).
func (f *Fields) Only(allowed ...string) {
	for _, m := range f.obj.Members {
		ok := false
		for _, a := range allowed {
			if m.Name == a {
				ok = true
				break
			}
		}
		if !ok {
			f.Fail(m.Name, "unknown member")
			return
		}
	}
}

func (f *Fields) lookup(name string) *Value {
	for i := range f.obj.Members {
		if f.obj.Members[i].Name == name {
			return &f.obj.Members[i].Value
		}
	}
	return nil
}

// Value returns a member's value: nil when absent (an error if required)
// or null (always an error).
func (f *Fields) Value(name string, required bool) *Value {
	if f.st.err != nil {
		return nil
	}
	v := f.lookup(name)
	switch {
	case v == nil:
		if required {
			f.Fail(name, "missing")
		}
		return nil
	case v.Kind == Null:
		f.Fail(name, "must not be null")
		return nil
	}
	return v
}

func (f *Fields) typed(name string, required bool, want Kind) *Value {
	v := f.Value(name, required)
	if v != nil && v.Kind != want {
		f.Fail(name, "must be %s, got %s", want, v.Kind)
		return nil
	}
	return v
}

// String reads a string member.
func (f *Fields) String(name string, required bool) string {
	if v := f.typed(name, required, String); v != nil {
		return v.Text
	}
	return ""
}

// Bool reads a boolean member.
func (f *Fields) Bool(name string, required bool) bool {
	if v := f.typed(name, required, Bool); v != nil {
		return v.Bool
	}
	return false
}

// Int reads an integer member: a number without fraction or exponent within
// [lo, hi].
func (f *Fields) Int(name string, required bool, lo, hi int64) int64 {
	n := f.Int64(name, required)
	if f.st.err != nil {
		return 0
	}
	if n < lo || n > hi {
		f.Fail(name, "%d out of range %d–%d", n, lo, hi)
		return 0
	}
	return n
}

// Int64 reads an integer member within the signed 64-bit range.
func (f *Fields) Int64(name string, required bool) int64 {
	v := f.Value(name, required)
	if v == nil {
		return 0
	}
	n, err := Int(v)
	if err != nil {
		f.Fail(name, "%v", err)
	}
	return n
}

// Int returns a number's value if it is an integer literal (no fraction,
// no exponent) in the signed 64-bit range.
func Int(v *Value) (int64, error) {
	if v.Kind != Number {
		return 0, fmt.Errorf("must be an integer, got %s", v.Kind)
	}
	n, err := strconv.ParseInt(v.Text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be an integer in the signed 64-bit range without fraction or exponent, got %s", strconv.Quote(clip(v.Text)))
	}
	return n, nil
}

// Object returns a reader for an object member, or nil.
func (f *Fields) Object(name string, required bool) *Fields {
	v := f.typed(name, required, Object)
	if v == nil {
		return nil
	}
	return &Fields{obj: v, prefix: f.prefix + name + ".", st: f.st}
}

// Compact returns an object member's bytes without insignificant
// whitespace, for objects that travel opaque (a receipt inside a result).
func (f *Fields) Compact(name string, required bool) []byte {
	v := f.typed(name, required, Object)
	if v == nil {
		return nil
	}
	return compact(v.Raw)
}

// Strings reads an array of strings of at most max entries; an empty array
// gives a non-nil empty slice.
func (f *Fields) Strings(name string, required bool, max int) []string {
	v := f.typed(name, required, Array)
	if v == nil {
		return nil
	}
	if len(v.Items) > max {
		f.Fail(name, "%d entries, at most %d allowed", len(v.Items), max)
		return nil
	}
	out := make([]string, len(v.Items))
	for i, it := range v.Items {
		if it.Kind != String {
			f.Fail(name+"["+strconv.Itoa(i)+"]", "must be a string, got %s", it.Kind)
			return nil
		}
		out[i] = it.Text
	}
	return out
}

// compact drops insignificant whitespace from valid JSON.
func compact(raw []byte) []byte {
	if bytes.IndexAny(raw, " \t\r\n") < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw))
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			out = append(out, c)
			switch c {
			case '\\':
				i++
				out = append(out, raw[i])
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
		case '"':
			inString = true
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

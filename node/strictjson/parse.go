// Package strictjson is the one JSON reader behind every Phase document a
// peer can send: control messages, capability records, receipts, manifests,
// and the input of canonicalisation.
//
// It accepts exactly one JSON value (RFC 8259) and refuses what a lenient
// decoder would silently resolve, because two parsers resolving it
// differently is an attack: invalid UTF-8, an escaped lone UTF-16 surrogate
// (encoding/json turns it into U+FFFD), a member name repeated in any object
// at any depth (after escapes are decoded), trailing data, and nesting
// deeper than MaxDepth. Member names are kept exactly as written, so lookups
// are case-sensitive.
//
// Fields then reads an object's members by exact name with typed accessors
// whose errors name the member (see Fields).
package strictjson

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting, so hostile input cannot drive deep recursion.
const MaxDepth = 256

// Kind is the JSON type of a Value.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "a boolean"
	case Number:
		return "a number"
	case String:
		return "a string"
	case Array:
		return "an array"
	case Object:
		return "an object"
	}
	return "nothing"
}

// Value is one parsed JSON value.
type Value struct {
	Kind    Kind
	Bool    bool     // Bool
	Text    string   // String: the decoded string; Number: the literal as written
	Items   []Value  // Array
	Members []Member // Object, in document order
	Raw     []byte   // the value's bytes in the input
}

// Member is one member of an object.
type Member struct {
	Name  string
	Value Value
}

// SyntaxError is input that is not one strict JSON value.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s (at byte %d)", e.Msg, e.Offset)
}

// Parse reads exactly one JSON value from data, with optional whitespace
// around it.
func Parse(data []byte) (Value, error) {
	p := parser{b: data}
	p.space()
	if p.i == len(p.b) {
		return Value{}, p.fail("empty input: want a JSON value")
	}
	v, err := p.value(0)
	if err != nil {
		return Value{}, err
	}
	p.space()
	if p.i != len(p.b) {
		return Value{}, p.fail("trailing data after the JSON value")
	}
	return v, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) fail(format string, a ...any) error {
	return &SyntaxError{Offset: p.i, Msg: fmt.Sprintf(format, a...)}
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (Value, error) {
	if depth > MaxDepth {
		return Value{}, p.fail("nesting deeper than %d levels", MaxDepth)
	}
	if p.i >= len(p.b) {
		return Value{}, p.fail("unexpected end of input: want a value")
	}
	start := p.i
	var v Value
	var err error
	switch c := p.b[p.i]; {
	case c == '{':
		v, err = p.object(depth)
	case c == '[':
		v, err = p.array(depth)
	case c == '"':
		var s string
		s, err = p.string()
		v = Value{Kind: String, Text: s}
	case c == '-' || c >= '0' && c <= '9':
		v, err = p.number()
	case c == 't':
		v, err = p.literal("true", Value{Kind: Bool, Bool: true})
	case c == 'f':
		v, err = p.literal("false", Value{Kind: Bool})
	case c == 'n':
		v, err = p.literal("null", Value{Kind: Null})
	default:
		return Value{}, p.fail("unexpected character %q: want a value", rune(c))
	}
	if err != nil {
		return Value{}, err
	}
	v.Raw = p.b[start:p.i]
	return v, nil
}

func (p *parser) literal(word string, v Value) (Value, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return Value{}, p.fail("invalid literal: want %s", word)
	}
	p.i += len(word)
	return v, nil
}

func (p *parser) object(depth int) (Value, error) {
	p.i++ // '{'
	v := Value{Kind: Object, Members: []Member{}}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	var names map[string]struct{} // once the object is big enough for a scan to cost
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return Value{}, p.fail("want a member name (a string)")
		}
		at := p.i
		name, err := p.string()
		if err != nil {
			return Value{}, err
		}
		if dup := v.has(name, &names); dup {
			p.i = at
			return Value{}, p.fail("duplicate member name %s", strconv.Quote(clip(name)))
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return Value{}, p.fail("want ':' after member name")
		}
		p.i++
		p.space()
		mv, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.Members = append(v.Members, Member{Name: name, Value: mv})
		p.space()
		if p.i >= len(p.b) {
			return Value{}, p.fail("unexpected end of input in an object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return v, nil
		default:
			return Value{}, p.fail("want ',' or '}' in an object")
		}
	}
}

// has reports whether the object already has a member called name and,
// when not, records it in names once there are more than a few members.
func (v *Value) has(name string, names *map[string]struct{}) bool {
	const scanLimit = 16
	if *names != nil {
		_, ok := (*names)[name]
		(*names)[name] = struct{}{}
		return ok
	}
	for _, m := range v.Members {
		if m.Name == name {
			return true
		}
	}
	if len(v.Members) >= scanLimit {
		*names = make(map[string]struct{}, 2*scanLimit)
		for _, m := range v.Members {
			(*names)[m.Name] = struct{}{}
		}
		(*names)[name] = struct{}{}
	}
	return false
}

func (p *parser) array(depth int) (Value, error) {
	p.i++ // '['
	v := Value{Kind: Array, Items: []Value{}}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		item, err := p.value(depth + 1)
		if err != nil {
			return Value{}, err
		}
		v.Items = append(v.Items, item)
		p.space()
		if p.i >= len(p.b) {
			return Value{}, p.fail("unexpected end of input in an array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return v, nil
		default:
			return Value{}, p.fail("want ',' or ']' in an array")
		}
	}
}

// number checks the JSON number grammar and keeps the literal.
func (p *parser) number() (Value, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return Value{}, p.fail("invalid number: want a digit")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return Value{}, p.fail("invalid number: want a digit after '.'")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return Value{}, p.fail("invalid number: want a digit in the exponent")
		}
	}
	return Value{Kind: Number, Text: string(p.b[start:p.i])}, nil
}

func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// string reads a string literal starting at the quote and returns its
// decoded value.
func (p *parser) string() (string, error) {
	p.i++ // opening quote
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			if !utf8.Valid(s) {
				return "", p.fail("string is not valid UTF-8")
			}
			p.i++
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.fail("control character 0x%02x in a string (must be escaped)", c)
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for {
		if p.i >= len(p.b) {
			return "", p.fail("unexpected end of input in a string")
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", p.fail("string is not valid UTF-8")
			}
			return string(buf), nil
		case c < 0x20:
			return "", p.fail("control character 0x%02x in a string (must be escaped)", c)
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		// An escape.
		if p.i+1 >= len(p.b) {
			return "", p.fail("unexpected end of input in an escape")
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail(`invalid \u escape: want 4 hex digits`)
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || p.i+6 > len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
					return "", p.fail(`lone UTF-16 surrogate escape \u%04x`, r)
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "", p.fail(`lone UTF-16 surrogate escape \u%04x`, r)
				}
				r = utf16.DecodeRune(r, lo)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", p.fail("invalid escape \\%c", e)
		}
	}
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

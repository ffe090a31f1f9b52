// Package canonical produces RFC 8785 (JSON Canonicalization Scheme, JCS)
// canonical JSON, the byte form that Phase signs.
//
// Restriction: only integer numbers are supported. A number must be written
// as a plain JSON integer (no fraction, no exponent) with an absolute value of
// at most 2^53−1 (the largest integer an IEEE-754 double, and so every
// JavaScript or PHP-float implementation, holds exactly). Everything else is
// rejected with an error instead of being canonicalized, because every Phase
// format uses integers only and JCS's number serialization (ECMAScript
// Number.prototype.toString) is where implementations most often disagree.
// "-0" is accepted and written as "0", as JCS does.
//
// Input must also be valid UTF-8 without escaped lone surrogates ("\ud800"),
// and objects must not repeat a key (after unescaping): such input has no
// single meaning, so it is rejected rather than silently resolved.
package canonical

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxSafeInteger is the largest absolute integer value accepted (2^53−1).
const MaxSafeInteger = 1<<53 - 1

// maxDepth bounds nesting so hostile input cannot drive deep recursion.
const maxDepth = 1000

// Marshal encodes v with encoding/json and returns its canonical form.
func Marshal(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical: marshal: %w", err)
	}
	return Canonicalize(raw)
}

// Canonicalize returns the RFC 8785 canonical form of one JSON value: object
// keys sorted by UTF-16 code units, no insignificant whitespace, strings
// escaped as ECMAScript JSON.stringify does, integers in plain decimal.
// Trailing data after the value is an error.
func Canonicalize(jsonBytes []byte) ([]byte, error) {
	if !utf8.Valid(jsonBytes) {
		return nil, errors.New("canonical: input is not valid UTF-8")
	}
	if err := checkSurrogateEscapes(jsonBytes); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(jsonBytes))
	dec.UseNumber()
	p := parser{dec: dec}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("canonical: trailing data after JSON value at offset %d", dec.InputOffset())
	}
	var buf bytes.Buffer
	buf.Grow(len(jsonBytes))
	write(&buf, v)
	return buf.Bytes(), nil
}

// member is one object member; key16 caches the UTF-16 form for sorting.
type member struct {
	key   string
	key16 []uint16
	val   any
}

type object []member

type parser struct {
	dec *json.Decoder
}

func (p *parser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("canonical: nesting deeper than %d levels", maxDepth)
	}
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("canonical: unexpected end of JSON input")
		}
		return nil, fmt.Errorf("canonical: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return p.object(depth)
		case '[':
			return p.array(depth)
		default:
			return nil, fmt.Errorf("canonical: unexpected %q at offset %d", rune(t), p.dec.InputOffset())
		}
	case json.Number:
		return parseInteger(t)
	case string, bool, nil:
		return t, nil
	default:
		return nil, fmt.Errorf("canonical: unexpected token %v", tok)
	}
}

func (p *parser) object(depth int) (any, error) {
	obj := object{}
	seen := map[string]struct{}{}
	for p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("canonical: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("canonical: object key is not a string at offset %d", p.dec.InputOffset())
		}
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("canonical: duplicate object key %q", key)
		}
		seen[key] = struct{}{}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj = append(obj, member{key: key, key16: utf16.Encode([]rune(key)), val: v})
	}
	if err := p.closing('}'); err != nil {
		return nil, err
	}
	// RFC 8785 §3.2.3: sort by the keys' UTF-16 code units.
	slices.SortFunc(obj, func(a, b member) int { return slices.Compare(a.key16, b.key16) })
	return obj, nil
}

func (p *parser) array(depth int) (any, error) {
	arr := []any{}
	for p.dec.More() {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	if err := p.closing(']'); err != nil {
		return nil, err
	}
	return arr, nil
}

func (p *parser) closing(want json.Delim) error {
	tok, err := p.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("canonical: unexpected end of JSON input")
		}
		return fmt.Errorf("canonical: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("canonical: expected %q at offset %d", rune(want), p.dec.InputOffset())
	}
	return nil
}

// parseInteger accepts only plain integer literals within ±(2^53−1).
func parseInteger(n json.Number) (int64, error) {
	s := string(n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == 'e' || c == 'E' {
			return 0, fmt.Errorf("canonical: number %s is not an integer (only integers without fraction or exponent are supported)", truncate(s))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > MaxSafeInteger || v < -MaxSafeInteger {
		return 0, fmt.Errorf("canonical: integer %s out of range ±%d (2^53−1)", truncate(s), int64(MaxSafeInteger))
	}
	return v, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// checkSurrogateEscapes rejects \u escapes that encode a lone UTF-16
// surrogate; encoding/json would silently turn them into U+FFFD, which would
// let two different inputs share one canonical form. Backslashes only occur
// inside strings in valid JSON; invalid JSON is rejected later by the decoder.
func checkSurrogateEscapes(b []byte) error {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) {
			return nil
		}
		if b[i+1] != 'u' {
			i++ // skip the escaped character (it may itself be a backslash)
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok {
			return nil // malformed escape: the decoder reports it
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if lo, ok := hex4(b, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return fmt.Errorf("canonical: lone UTF-16 surrogate escape \\u%04x at offset %d", r, i)
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("canonical: lone UTF-16 surrogate escape \\u%04x at offset %d", r, i)
		}
		i += 5
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
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
	return r, true
}

func write(buf *bytes.Buffer, v any) {
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case int64:
		buf.WriteString(strconv.FormatInt(t, 10))
	case string:
		writeString(buf, t)
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			write(buf, e)
		}
		buf.WriteByte(']')
	case object:
		buf.WriteByte('{')
		for i, m := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, m.key)
			buf.WriteByte(':')
			write(buf, m.val)
		}
		buf.WriteByte('}')
	}
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a canonical JSON string literal (quotes
// included). Each byte of s that is not part of valid UTF-8 is replaced by
// U+FFFD, as encoding/json does, so the result is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = replaceInvalid(s)
	}
	buf := bytes.NewBuffer(dst)
	writeString(buf, s)
	return buf.Bytes()
}

func replaceInvalid(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// writeString escapes as ECMAScript JSON.stringify (RFC 8785 §3.2.2.2):
// only the two-character escapes and \u00xx for other control characters;
// everything else, including non-ASCII, '/', '<', U+2028, is written as-is.
func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf.WriteString(s[start:i])
		switch c {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hexDigits[c>>4])
			buf.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

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
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// MaxSafeInteger is the largest absolute integer value accepted (2^53−1).
const MaxSafeInteger = phase.MaxSafeInteger

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
// The input is read by strictjson, so duplicate keys, invalid UTF-8, lone
// surrogate escapes and trailing data are errors, not resolved silently.
func Canonicalize(jsonBytes []byte) ([]byte, error) {
	v, err := strictjson.Parse(jsonBytes)
	if err != nil {
		return nil, fmt.Errorf("canonical: %w", err)
	}
	buf := make([]byte, 0, len(jsonBytes))
	return write(buf, &v)
}

// write appends the canonical form of v.
func write(buf []byte, v *strictjson.Value) ([]byte, error) {
	switch v.Kind {
	case strictjson.Null:
		return append(buf, "null"...), nil
	case strictjson.Bool:
		return strconv.AppendBool(buf, v.Bool), nil
	case strictjson.Number:
		n, err := parseInteger(v.Text)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(buf, n, 10), nil
	case strictjson.String:
		return appendString(buf, v.Text), nil
	case strictjson.Array:
		buf = append(buf, '[')
		for i := range v.Items {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = write(buf, &v.Items[i]); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	}
	// RFC 8785 §3.2.3: members sorted by the names' UTF-16 code units.
	members := slices.Clone(v.Members)
	slices.SortFunc(members, func(a, b strictjson.Member) int { return compareUTF16(a.Name, b.Name) })
	buf = append(buf, '{')
	for i := range members {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(appendString(buf, members[i].Name), ':')
		var err error
		if buf, err = write(buf, &members[i].Value); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// compareUTF16 orders strings by their UTF-16 code units. UTF-8 byte order
// equals code point order, which differs from UTF-16 order only where a
// supplementary character (a surrogate pair, D800–DFFF) meets a BMP
// character at or above U+E000; only then are the code units compared.
func compareUTF16(a, b string) int {
	if isASCII(a) && isASCII(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// parseInteger accepts only plain integer literals within ±(2^53−1).
func parseInteger(s string) (int64, error) {
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

const hexDigits = "0123456789abcdef"

// AppendString appends s as a canonical JSON string literal (quotes
// included). Each byte of s that is not part of valid UTF-8 is replaced by
// U+FFFD, as encoding/json does, so the result is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = replaceInvalid(s)
	}
	return appendString(dst, s)
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

// appendString escapes as ECMAScript JSON.stringify (RFC 8785 §3.2.2.2):
// only the two-character escapes and \u00xx for other control characters;
// everything else, including non-ASCII, '/', '<', U+2028, is written as-is.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"':
			buf = append(buf, `\"`...)
		case '\\':
			buf = append(buf, `\\`...)
		case '\b':
			buf = append(buf, `\b`...)
		case '\f':
			buf = append(buf, `\f`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\t':
			buf = append(buf, `\t`...)
		default:
			buf = append(buf, `\u00`...)
			buf = append(buf, hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

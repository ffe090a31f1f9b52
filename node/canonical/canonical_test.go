package canonical

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/node/strictjson"
)

func TestAPI27_API28_CanonicalizeVectors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			// RFC 8785 §3.2.3 sorting example: UTF-16 code unit order puts the
			// surrogate pair of U+1F600 before U+FB33.
			name: "rfc8785 key sorting",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			want: "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			// RFC 8785 §3.2.2 example without the "numbers" member (non-integers
			// are outside the supported subset).
			name: "rfc8785 strings and literals",
			in: `{
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			name: "all control characters",
			in:   `"\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f\u0020\u007f"`,
			want: `"\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f ` + "\x7f" + `"`,
		},
		{
			name: "no html escaping, line separators as-is",
			in:   `"\u003c\u003e\u0026 \u2028\u2029 /"`,
			want: "\"<>& \u2028\u2029 /\"",
		},
		{
			name: "non-ascii raw utf-8 stays",
			in:   `{"clé":"日本語","emoji":"😀"}`,
			want: `{"clé":"日本語","emoji":"😀"}`,
		},
		{
			name: "nested objects sorted, arrays keep order, whitespace removed",
			in:   " { \"b\" : [ 3 , 2 , { \"z\" : 1 , \"a\" : 2 } ] , \"a\" : { } , \"c\" : [ ] } ",
			want: `{"a":{},"b":[3,2,{"a":2,"z":1}],"c":[]}`,
		},
		{
			name: "ascii key order is byte order",
			in:   `{"b":1,"B":2,"a":3,"_":4,"aa":5,"":6}`,
			want: `{"":6,"B":2,"_":4,"a":3,"aa":5,"b":1}`,
		},
		{
			name: "integers at the safe limits",
			in:   `[0,-0,1,-1,9007199254740991,-9007199254740991]`,
			want: `[0,0,1,-1,9007199254740991,-9007199254740991]`,
		},
		{name: "scalars", in: ` true `, want: `true`},
		{name: "null", in: `null`, want: `null`},
		{name: "escaped key dedups to itself", in: `{"\u0061":1}`, want: `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestAPI29_CanonicalizeRejects(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"fraction", `{"a":1.5}`, "not an integer"},
		{"integer-valued fraction", `1.0`, "not an integer"},
		{"exponent", `[1e3]`, "not an integer"},
		{"too large", `9007199254740992`, "out of range"},
		{"too small", `-9007199254740992`, "out of range"},
		{"huge", `123456789012345678901234567890`, "out of range"},
		{"duplicate key", `{"a":1,"a":2}`, `duplicate member name "a"`},
		{"duplicate key after unescape", `{"a":1,"\u0061":2}`, `duplicate member name "a"`},
		{"nested duplicate", `[{"x":{"k":1,"k":1}}]`, `duplicate member name "k"`},
		{"trailing data", `{} {}`, "trailing data"},
		{"trailing garbage", `1 x`, "trailing data"},
		{"empty", ``, "empty input"},
		{"unterminated object", `{"a":1`, "unexpected end"},
		{"unterminated array", `[1,2`, "unexpected end"},
		{"trailing comma", `[1,]`, "want a value"},
		{"bare word", `nul`, "canonical"},
		{"invalid utf-8", "\"\xff\"", "not valid UTF-8"},
		{"lone high surrogate", `"\ud800"`, "lone UTF-16 surrogate"},
		{"lone low surrogate", `"\udc00x"`, "lone UTF-16 surrogate"},
		{"high then non-low", `"\ud800\u0041"`, "lone UTF-16 surrogate"},
		{"too deep", strings.Repeat("[", strictjson.MaxDepth+2) + strings.Repeat("]", strictjson.MaxDepth+2), "nesting deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestEscapedBackslashIsNotASurrogateEscape(t *testing.T) {
	// `\\ud800` is a backslash followed by the text "ud800", not an escape.
	got, err := Canonicalize([]byte(`"\\ud800"`))
	require.NoError(t, err)
	assert.Equal(t, `"\\ud800"`, string(got))
}

func TestMarshal(t *testing.T) {
	type inner struct {
		Z int    `json:"z"`
		A string `json:"a"`
	}
	v := struct {
		Name  string   `json:"name"`
		Count int64    `json:"count"`
		OK    bool     `json:"ok"`
		List  []string `json:"list"`
		In    inner    `json:"in"`
	}{Name: "<b>&\"x\"\n", Count: -42, OK: true, List: []string{"b", "a"}, In: inner{Z: 1, A: "é"}}
	got, err := Marshal(v)
	require.NoError(t, err)
	assert.Equal(t, `{"count":-42,"in":{"a":"é","z":1},"list":["b","a"],"name":"<b>&\"x\"\n","ok":true}`, string(got))

	_, err = Marshal(map[string]float64{"x": 0.5})
	require.ErrorContains(t, err, "not an integer")

	_, err = Marshal(func() {})
	require.ErrorContains(t, err, "canonical: marshal")
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"<&>/\u2028é😀", "\"<&>/\u2028é😀\""},
		{"\"\\\b\f\n\r\t\x00\x1f\x7f", `"\"\\\b\f\n\r\t\u0000\u001f` + "\x7f" + `"`},
		{"a\xffb\xc3", "\"a\uFFFDb\uFFFD\""},
	}
	for _, tt := range tests {
		got := AppendString([]byte("x:"), tt.in)
		assert.Equal(t, "x:"+tt.want, string(got), "input %q", tt.in)
		// Agrees with Marshal, which goes through encoding/json.
		viaMarshal, err := Marshal(tt.in)
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(viaMarshal), "input %q", tt.in)
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,false,null,"x"]}`,
		`{"\u20ac":1,"\ud83d\ude00":2,"\ufb33":3}`,
		`"\u0000\b\f\n\r\t\"\\/"`,
		`[9007199254740991,-0,0]`,
		`{"a":{"a":{"a":[]}}}`,
		`1.5`, `{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `[`, `{} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			return
		}
		again, err := Canonicalize(out)
		if err != nil {
			t.Fatalf("canonical output %q rejected: %v", out, err)
		}
		if string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
		// Canonicalization must not change the meaning.
		var a, b any
		if err := json.Unmarshal(in, &a); err != nil {
			t.Fatalf("accepted input that encoding/json rejects: %v", err)
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("output is not JSON: %v", err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("meaning changed: %#v vs %#v", a, b)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\x00\x1f\"\\", "é😀\u2028", "\xff\xc3", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		want, err := Marshal(s)
		if err != nil {
			t.Fatalf("Marshal(%q): %v", s, err)
		}
		if string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %q, Marshal = %q", s, got, want)
		}
	})
}

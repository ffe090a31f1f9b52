package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// WIRE-11, WIRE-12, WIRE-13: one value, UTF-8, no duplicate member names at
// any depth; these are the refusals every Phase document relies on.
func TestWIRE11_WIRE12_WIRE13_ParseRefuses(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", ``, "empty input"},
		{"only space", " \n", "empty input"},
		{"trailing data", `{} {}`, "trailing data"},
		{"duplicate", `{"a":1,"a":2}`, `duplicate member name "a"`},
		{"duplicate after unescape", `{"type":1,"\u0074ype":2}`, `duplicate member name "type"`},
		{"duplicate deep", `{"x":[{"k":1,"k":1}]}`, `duplicate member name "k"`},
		{"duplicate in a big object", bigObject(40, true), `duplicate member name "m0"`},
		{"invalid utf-8", "\"\xff\"", "not valid UTF-8"},
		{"lone high surrogate", `"\ud800"`, "lone UTF-16 surrogate"},
		{"lone low surrogate", `"\udc00"`, "lone UTF-16 surrogate"},
		{"high then non-low", `"\ud800\u0041"`, "lone UTF-16 surrogate"},
		{"control char", "\"a\x01\"", "control character"},
		{"bad escape", `"\x"`, "invalid escape"},
		{"leading zero", `01`, "trailing data"},
		{"bare fraction", `1.`, "digit after '.'"},
		{"trailing comma", `[1,]`, "want a value"},
		{"unquoted name", `{a:1}`, "member name"},
		{"too deep", strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2), "nesting deeper"},
		{"bad literal", `tru`, "invalid literal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func bigObject(n int, dup bool) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"m` + strconv.Itoa(i) + `":1`)
	}
	if dup {
		b.WriteString(`,"m0":2`)
	}
	b.WriteString("}")
	return b.String()
}

func TestParseKeepsRawAndOrder(t *testing.T) {
	v, err := Parse([]byte(` {"b": [1, "x\u00e9"], "a": {"c": null}} `))
	require.NoError(t, err)
	require.Equal(t, Object, v.Kind)
	require.Len(t, v.Members, 2)
	assert.Equal(t, "b", v.Members[0].Name)
	assert.Equal(t, `[1, "x\u00e9"]`, string(v.Members[0].Value.Raw))
	assert.Equal(t, "xé", v.Members[0].Value.Items[1].Text)
	assert.Equal(t, Null, v.Members[1].Value.Members[0].Value.Kind)
}

// WIRE-15, WIRE-17, WIRE-18, WIRE-19: exact names, no null, integers
// without fraction or exponent, booleans only true/false.
func TestWIRE15_WIRE17_WIRE18_WIRE19_Fields(t *testing.T) {
	f, err := ParseObject([]byte(`{"n":5,"s":"x","b":true,"o":{"i":1},"a":["p","q"],"z":null,"f":1.0,"e":1e3,"big":99999999999999999999}`))
	require.NoError(t, err)
	assert.Equal(t, int64(5), f.Int("n", true, 0, 10))
	assert.Equal(t, "x", f.String("s", true))
	assert.True(t, f.Bool("b", true))
	assert.Equal(t, []string{"p", "q"}, f.Strings("a", true, 4))
	o := f.Object("o", true)
	assert.Equal(t, int64(1), o.Int64("i", true))
	assert.Equal(t, "", f.String("absent", false))
	require.NoError(t, f.Err())

	cases := []struct {
		name string
		read func(f *Fields)
		want string
	}{
		{"case differs", func(f *Fields) { f.Int("N", true, 0, 10) }, `field "N": missing`},
		{"null", func(f *Fields) { f.String("z", false) }, `field "z": must not be null`},
		{"fraction", func(f *Fields) { f.Int64("f", true) }, `field "f": must be an integer`},
		{"exponent", func(f *Fields) { f.Int64("e", true) }, `field "e": must be an integer`},
		{"overflow", func(f *Fields) { f.Int64("big", true) }, `field "big": must be an integer in the signed 64-bit range`},
		{"range", func(f *Fields) { f.Int("n", true, 6, 9) }, `field "n": 5 out of range 6–9`},
		{"type", func(f *Fields) { f.Bool("n", true) }, `field "n": must be a boolean, got a number`},
		{"nested path", func(f *Fields) { f.Object("o", true).String("i", true) }, `field "o.i": must be a string`},
		{"array entry", func(f *Fields) { f.Int64("a", true) }, `field "a": must be an integer, got an array`},
		{"too many", func(f *Fields) { f.Strings("a", true, 1) }, `field "a": 2 entries, at most 1`},
		{"unknown", func(f *Fields) { f.Only("n", "s") }, `field "b": unknown member`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseObject([]byte(`{"n":5,"s":"x","b":true,"o":{"i":1},"a":["p","q"],"z":null,"f":1.0,"e":1e3,"big":99999999999999999999}`))
			require.NoError(t, err)
			c.read(f)
			require.Error(t, f.Err())
			assert.Contains(t, f.Err().Error(), c.want)
		})
	}
}

func TestCompact(t *testing.T) {
	f, err := ParseObject([]byte(`{"r": { "a" : "x y\" z" , "b":[1, 2] }}`))
	require.NoError(t, err)
	assert.Equal(t, `{"a":"x y\" z","b":[1,2]}`, string(f.Compact("r", true)))
}

// FuzzParse checks Parse against encoding/json: whatever Parse accepts is
// valid JSON with the same meaning, and valid JSON that Parse refuses has a
// reason Parse is meant to refuse it for.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,2,{"b":null}],"c":"\u00e9\ud83d\ude00"}`, `"x"`, `-0.5e+3`,
		`{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `{"type":"offer"}`, ` 1 `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		valid := json.Valid(data)
		if err == nil {
			if !valid {
				t.Fatalf("Parse accepted invalid JSON %q", data)
			}
			var want any
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			if err := dec.Decode(&want); err != nil {
				t.Fatalf("encoding/json refuses %q: %v", data, err)
			}
			if got := toAny(&v); !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse(%q) = %#v, encoding/json %#v", data, got, want)
			}
			return
		}
		if valid {
			msg := err.Error()
			for _, ok := range []string{"duplicate member name", "lone UTF-16 surrogate", "not valid UTF-8", "nesting deeper"} {
				if strings.Contains(msg, ok) {
					return
				}
			}
			t.Fatalf("Parse refused valid JSON %q: %v", data, err)
		}
	})
}

func toAny(v *Value) any {
	switch v.Kind {
	case Null:
		return nil
	case Bool:
		return v.Bool
	case Number:
		return json.Number(v.Text)
	case String:
		return v.Text
	case Array:
		out := make([]any, len(v.Items))
		for i := range v.Items {
			out[i] = toAny(&v.Items[i])
		}
		return out
	}
	out := map[string]any{}
	for i := range v.Members {
		out[v.Members[i].Name] = toAny(&v.Members[i].Value)
	}
	return out
}

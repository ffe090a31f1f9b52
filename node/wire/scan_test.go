package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// refDuplicate is a slow reference for scanObject's duplicate detection,
// built on encoding/json's tokenizer: does any object repeat a name?
func refDuplicate(t *testing.T, body []byte) bool {
	type level struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*level
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		require.NoError(t, err)
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &level{obj: true, wantKey: true, keys: map[string]bool{}})
			case '[':
				stack = append(stack, &level{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if top := stack[len(stack)-1]; top.obj && top.wantKey {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.wantKey = false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// FuzzScanObject checks the hand-written scanner against encoding/json: same
// members with the same values, and a duplicate reported exactly when one
// exists.
func FuzzScanObject(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"a":{"b":[1,{"c":"}\"]{,"}],"b":2},"s":"\\\"","a\u0062":[[]],"e":{}}`))
	f.Add([]byte(` { "x" : "y" , "x" : 1 } `))
	f.Add([]byte(`{"":0,"\u0000":1,"\"":2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) || !json.Valid(body) || bytes.TrimLeft(body, jsonSpace)[0] != '{' {
			return
		}
		members, err := scanObject(body)
		dup := refDuplicate(t, body)
		if dup {
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorContains(t, err, "repeats member name")
			return
		}
		require.NoError(t, err)
		var ref map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &ref))
		require.Len(t, members, len(ref))
		for k, v := range ref {
			require.Contains(t, members, k)
			require.Equal(t, string(v), string(members[k]), "member %q", k)
		}
	})
}

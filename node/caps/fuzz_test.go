package caps

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func seedRecords(f *testing.F) [][]byte {
	r, _, _ := signedRecord(f, 1, nil)
	good := mustMarshal(f, r)
	alias, _, _ := signedRecord(f, 2, func(r *Record) { r.Arch = "arm64"; r.ABIs = []string{"a", "b"} })
	return [][]byte{
		good,
		mustMarshal(f, alias),
		bytes.Replace(good, []byte(`"version":1`), []byte(`"version":1,"version":1`), 1),
		bytes.Replace(good, []byte(`"limits":{`), []byte(`"limits":{"x":[{}],`), 1),
		[]byte(strings.ToUpper(string(good))),
		good[:len(good)/2],
		[]byte(`{}`),
		[]byte(`null`),
		[]byte(`{"limits":null}`),
		[]byte(`{"seq":1e400}`),
		[]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`),
		[]byte("\xff\xfe"),
	}
}

// FuzzParse: Parse never panics, and what it accepts survives a
// marshal/parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range seedRecords(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			require.Nil(t, r)
			return
		}
		b, err := json.Marshal(r)
		require.NoError(t, err)
		again, err := Parse(b)
		require.NoError(t, err, "re-marshalled record rejected: %s", b)
		require.Equal(t, r, again)
		_, _ = r.SigningBytes()
	})
}

// FuzzValidate: Validate never panics, and accepts only records that Parse
// and Verify accept for the peer the key names.
func FuzzValidate(f *testing.F) {
	r, _, id := signedRecord(f, 1, nil)
	key := Key(id)
	for _, s := range seedRecords(f) {
		f.Add(key, s)
	}
	_, other := testKey(f, 2)
	f.Add(Key(other), mustMarshal(f, r))
	f.Add("/phase-caps/", mustMarshal(f, r))
	f.Add("", []byte{})
	f.Add("/phase-caps/"+strings.Repeat("Qm", 40), []byte("{}"))

	v := Validator{Now: fixedNow(testNow), OnReject: func(reason string, err error) {
		if reason == "" || err == nil {
			panic("OnReject without reason or error")
		}
	}}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		if err := v.Validate(key, value); err != nil {
			return
		}
		rec, err := Parse(value)
		require.NoError(t, err)
		require.NoError(t, Verify(rec, testNow))
		require.Equal(t, key, "/phase-caps/"+rec.PeerID)
		i, err := v.Select(key, [][]byte{[]byte("junk"), value})
		require.NoError(t, err)
		require.Equal(t, 1, i)
	})
}

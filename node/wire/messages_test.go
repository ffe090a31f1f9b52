package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func encode(t testing.TB, msg any) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteControl(&buf, msg))
	body, err := ReadFrame(&buf, MaxControlFrame, KindControl)
	require.NoError(t, err)
	require.Zero(t, buf.Len())
	return body
}

// typedParsers parse a body with the parser for one message type.
var typedParsers = map[string]func([]byte) (Message, error){
	TypeOffer:       func(b []byte) (Message, error) { return ParseOffer(b) },
	TypeAccepted:    func(b []byte) (Message, error) { return ParseAccepted(b) },
	TypeRejected:    func(b []byte) (Message, error) { return ParseRejected(b) },
	TypePayload:     func(b []byte) (Message, error) { return ParsePayload(b) },
	TypeResult:      func(b []byte) (Message, error) { return ParseResult(b) },
	TypeError:       func(b []byte) (Message, error) { return ParseError(b) },
	TypeCapsRequest: func(b []byte) (Message, error) { return ParseCapsRequest(b) },
	TypeCaps:        func(b []byte) (Message, error) { return ParseCapsResponse(b) },
	TypeProgress:    func(b []byte) (Message, error) { return ParseProgress(b) },
}

func TestMessageRoundTrip(t *testing.T) {
	for _, nm := range validMessages() {
		t.Run(nm.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, WriteControl(&buf, nm.msg))
			got, err := ReadControl(&buf)
			require.NoError(t, err)
			assert.Equal(t, nm.msg, got)

			typed, err := typedParsers[nm.msg.MessageType()](encode(t, nm.msg))
			require.NoError(t, err)
			assert.Equal(t, nm.msg, typed)
		})
	}
}

// Senders may leave Type empty: marshalling fills it in.
func TestWriteControlFillsType(t *testing.T) {
	o := testOffer()
	o.Type = ""
	got, err := ParseOffer(encode(t, o))
	require.NoError(t, err)
	assert.Equal(t, testOffer(), got)

	// Value (non-pointer) messages work too.
	got2, err := ParsePayload(encode(t, Payload{Args: nil}))
	require.NoError(t, err)
	assert.Equal(t, &Payload{Type: TypePayload, Args: []string{}}, got2)
	assert.Contains(t, string(encode(t, Payload{})), `"args":[]`)
}

func TestWIRE21_WriteControlRefusesBadMessages(t *testing.T) {
	tooBig := &Rejected{Reason: phase.ReasonQueueFull, Detail: strings.Repeat("x", MaxControlFrame)}
	wrongType := testOffer()
	wrongType.Type = TypePayload
	tests := []struct {
		name     string
		msg      any
		wantIs   error
		contains string
	}{
		{"invalid offer", &Offer{JobID: "j"}, ErrInvalid, `field "nonce"`},
		{"wrong type field", wrongType, ErrInvalid, `offer: field "type": is "payload"`},
		{"bad reason", &Rejected{Reason: "busy"}, ErrInvalid, `field "reason": "busy" is not one of`},
		{"too large", tooBig, ErrTooLarge, "exceeds cap 65536"},
		{"not an object", []string{"a"}, nil, "does not encode to a JSON object"},
		{"unmarshalable", map[string]any{"type": make(chan int)}, nil, "unsupported type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteControl(&buf, tt.msg)
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.contains)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			assert.Zero(t, buf.Len(), "nothing may reach the wire")
		})
	}
	// json.Marshal of a message with the wrong Type also fails.
	_, err := json.Marshal(wrongType)
	assert.ErrorContains(t, err, `offer message has type field "payload"`)
}

// WriteControl sends arbitrary objects unvalidated (for conformance tests).
func TestWriteControlArbitraryObject(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteControl(&buf, map[string]any{"type": "offer", "job_id": "x"}))
	_, err := ReadControl(&buf)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorContains(t, err, `offer: field "nonce": missing`)
}

func TestNoHTMLEscaping(t *testing.T) {
	body := encode(t, &Rejected{Reason: phase.ReasonInvalidRequest, Detail: "<a&b>"})
	assert.Contains(t, string(body), `"detail":"<a&b>"`)
}

// offerJSON builds an offer body from the valid fixture with edits applied:
// a nil value deletes the member.
func offerJSON(t testing.TB, edits map[string]any) []byte {
	return editJSON(t, testOffer(), edits)
}

func editJSON(t testing.TB, msg any, edits map[string]any) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(encode(t, msg), &m))
	for k, v := range edits {
		path := strings.Split(k, ".")
		obj := m
		for _, p := range path[:len(path)-1] {
			obj = obj[p].(map[string]any)
		}
		if v == nil {
			delete(obj, path[len(path)-1])
		} else if v == jsonNull {
			obj[path[len(path)-1]] = nil
		} else {
			obj[path[len(path)-1]] = v
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// jsonNull marks an edit that sets a member to JSON null.
var jsonNull = new(int)

func TestWIRE21_WIRE22_WIRE24_ParseValidationErrors(t *testing.T) {
	accepted := messageByName("accepted")
	result := messageByName("result")
	tests := []struct {
		name     string
		typ      string
		body     []byte
		contains string
	}{
		// offer
		{"offer job_id missing", TypeOffer, offerJSON(t, map[string]any{"job_id": nil}), `offer: field "job_id": missing`},
		{"offer job_id empty", TypeOffer, offerJSON(t, map[string]any{"job_id": ""}), `field "job_id": must be 1–128 characters, got 0`},
		{"offer job_id too long", TypeOffer, offerJSON(t, map[string]any{"job_id": strings.Repeat("a", 129)}), `field "job_id": must be 1–128 characters, got 129`},
		{"offer job_id bad char", TypeOffer, offerJSON(t, map[string]any{"job_id": "job/42"}), `field "job_id": byte 3 ('/')`},
		{"offer job_id not string", TypeOffer, offerJSON(t, map[string]any{"job_id": 42}), `field "job_id": must be a string, got a number`},
		{"offer job_id null", TypeOffer, offerJSON(t, map[string]any{"job_id": jsonNull}), `field "job_id": must not be null`},
		{"offer nonce short", TypeOffer, offerJSON(t, map[string]any{"nonce": "abcd"}), `field "nonce": must be 64 lowercase hex characters, got 4`},
		{"offer nonce upper", TypeOffer, offerJSON(t, map[string]any{"nonce": strings.ToUpper(testNonce)}), `field "nonce": must be 64 lowercase hex characters, got "8F14`},
		{"offer nonce missing", TypeOffer, offerJSON(t, map[string]any{"nonce": nil}), `field "nonce": missing`},
		{"offer manifest missing", TypeOffer, offerJSON(t, map[string]any{"manifest": nil}), `field "manifest": missing`},
		{"offer manifest not object", TypeOffer, offerJSON(t, map[string]any{"manifest": "x"}), `field "manifest": must be an object, got a string`},
		{"offer manifest invalid", TypeOffer, offerJSON(t, map[string]any{"manifest.cpu_cores": 0}), `field "manifest": manifest: cpu_cores 0 out of range 1–64`},
		{"offer manifest memory out of range", TypeOffer, offerJSON(t, map[string]any{"manifest.memory_mb": 32769}), `field "manifest": manifest: memory_mb 32769 out of range 1–32768`},
		{"offer manifest bad type", TypeOffer, offerJSON(t, map[string]any{"manifest.memory_mb": "64"}), `field "manifest.memory_mb": must be an integer`},
		{"offer manifest member missing", TypeOffer, offerJSON(t, map[string]any{"manifest.timeout_seconds": nil}), `field "manifest.timeout_seconds": missing`},
		{"offer manifest member null", TypeOffer, offerJSON(t, map[string]any{"manifest.version": jsonNull}), `field "manifest.version": must not be null`},
		{"offer manifest unknown member", TypeOffer, offerJSON(t, map[string]any{"manifest.priority": 1}), `field "manifest.priority": unknown member`},
		{"offer manifest member wrong case", TypeOffer, offerJSON(t, map[string]any{"manifest.CPU_CORES": 64}), `field "manifest.CPU_CORES": unknown member`},
		{"offer manifest bad hash", TypeOffer, offerJSON(t, map[string]any{"manifest.module_hash": "sha256:ABC"}), `field "manifest": manifest: module_hash "sha256:ABC" is not`},
		{"offer module_size missing", TypeOffer, offerJSON(t, map[string]any{"module_size": nil}), `field "module_size": missing`},
		{"offer module_size negative", TypeOffer, offerJSON(t, map[string]any{"module_size": -1}), `field "module_size": must be ≥ 0, got -1`},
		{"offer module_size fraction", TypeOffer, offerJSON(t, map[string]any{"module_size": 1.5}), `field "module_size": must be an integer in the signed 64-bit range without fraction or exponent, got "1.5"`},
		{"offer module_size exponent", TypeOffer, []byte(strings.Replace(string(offerJSON(t, nil)), `"module_size":8`, `"module_size":8e0`, 1)), `field "module_size": must be an integer`},
		{"offer module_size overflow", TypeOffer, []byte(strings.Replace(string(offerJSON(t, nil)), `"module_size":8`, `"module_size":9223372036854775808`, 1)), `field "module_size": must be an integer in the signed 64-bit range`},
		{"offer module_size string", TypeOffer, offerJSON(t, map[string]any{"module_size": "8"}), `field "module_size": must be an integer, got a string`},
		{"offer stdin_size missing", TypeOffer, offerJSON(t, map[string]any{"stdin_size": nil}), `field "stdin_size": missing`},
		{"offer stdin_size negative", TypeOffer, offerJSON(t, map[string]any{"stdin_size": -5}), `field "stdin_size": must be ≥ 0`},
		{"offer args_count missing", TypeOffer, offerJSON(t, map[string]any{"args_count": nil}), `field "args_count": missing`},
		{"offer args_count over", TypeOffer, offerJSON(t, map[string]any{"args_count": 1025}), `field "args_count": must be 0–1024, got 1025`},
		{"offer args_count negative", TypeOffer, offerJSON(t, map[string]any{"args_count": -1}), `field "args_count": must be 0–1024, got -1`},
		{"offer arch unknown", TypeOffer, offerJSON(t, map[string]any{"arch": "sparc"}), `field "arch": unknown architecture "sparc"`},
		{"offer arch empty with require", TypeOffer, offerJSON(t, map[string]any{"require_arch": true}), `field "require_arch": is true but arch is absent`},
		{"offer arch not string", TypeOffer, offerJSON(t, map[string]any{"arch": true}), `field "arch": must be a string, got a boolean`},
		{"offer require_arch not bool", TypeOffer, offerJSON(t, map[string]any{"arch": "amd64", "require_arch": "yes"}), `field "require_arch": must be a boolean, got a string`},
		{"offer deterministic not bool", TypeOffer, offerJSON(t, map[string]any{"deterministic": 1}), `field "deterministic": must be a boolean, got a number`},
		{"offer seed without deterministic", TypeOffer, offerJSON(t, map[string]any{"seed": 3}), `field "seed": is set but deterministic is false`},
		{"offer seed not integer", TypeOffer, offerJSON(t, map[string]any{"deterministic": true, "seed": "3"}), `field "seed": must be an integer, got a string`},
		// accepted
		{"accepted have_module missing", TypeAccepted, editJSON(t, accepted, map[string]any{"have_module": nil}), `accepted: field "have_module": missing`},
		{"accepted have_module not bool", TypeAccepted, editJSON(t, accepted, map[string]any{"have_module": "no"}), `field "have_module": must be a boolean`},
		{"accepted limits missing", TypeAccepted, editJSON(t, accepted, map[string]any{"limits": nil}), `field "limits": missing`},
		{"accepted limits not object", TypeAccepted, editJSON(t, accepted, map[string]any{"limits": []int{1}}), `field "limits": must be an object, got an array`},
		{"accepted memory missing", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.memory_mb": nil}), `field "limits.memory_mb": missing`},
		{"accepted memory zero", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.memory_mb": 0}), `field "limits.memory_mb": must be 1–32768, got 0`},
		{"accepted memory over", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.memory_mb": 32769}), `field "limits.memory_mb": must be 1–32768, got 32769`},
		{"accepted timeout missing", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.timeout_ms": nil}), `field "limits.timeout_ms": missing`},
		{"accepted timeout over", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.timeout_ms": 3600001}), `field "limits.timeout_ms": must be 1–3600000`},
		{"accepted stdout_cap missing", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.stdout_cap": nil}), `field "limits.stdout_cap": missing`},
		{"accepted stdout_cap negative", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.stdout_cap": -1}), `field "limits.stdout_cap": must be ≥ 0`},
		{"accepted stderr_cap null", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.stderr_cap": jsonNull}), `field "limits.stderr_cap": must not be null`},
		{"accepted stderr_cap negative", TypeAccepted, editJSON(t, accepted, map[string]any{"limits.stderr_cap": -3}), `field "limits.stderr_cap": must be ≥ 0`},
		// rejected
		{"rejected reason missing", TypeRejected, []byte(`{"type":"rejected","detail":""}`), `rejected: field "reason": missing`},
		{"rejected reason unknown", TypeRejected, []byte(`{"type":"rejected","reason":"busy","detail":""}`), `field "reason": "busy" is not one of insufficient_resources, arch_mismatch`},
		{"rejected detail missing", TypeRejected, []byte(`{"type":"rejected","reason":"queue_full"}`), `field "detail": missing`},
		{"rejected detail not string", TypeRejected, []byte(`{"type":"rejected","reason":"queue_full","detail":{}}`), `field "detail": must be a string, got an object`},
		// payload
		{"payload args missing", TypePayload, []byte(`{"type":"payload"}`), `payload: field "args": missing`},
		{"payload args null", TypePayload, []byte(`{"type":"payload","args":null}`), `field "args": must not be null`},
		{"payload args not array", TypePayload, []byte(`{"type":"payload","args":"a b"}`), `field "args": must be an array, got a string`},
		{"payload arg not string", TypePayload, []byte(`{"type":"payload","args":["a",1]}`), `field "args[1]": must be a string, got a number`},
		{"payload arg null", TypePayload, []byte(`{"type":"payload","args":["a",null]}`), `field "args[1]": must be a string, got null`},
		{"payload arg with NUL", TypePayload, []byte(`{"type":"payload","args":["a","b\u0000c"]}`), `field "args[1]": contains a NUL character`},
		{"payload too many args", TypePayload, []byte(`{"type":"payload","args":[` + strings.TrimSuffix(strings.Repeat(`"",`, 1025), ",") + `]}`), `field "args": 1025 entries, at most 1024 allowed`},
		// result
		{"result outcome missing", TypeResult, editJSON(t, result, map[string]any{"outcome": nil}), `result: field "outcome": missing`},
		{"result outcome unknown", TypeResult, editJSON(t, result, map[string]any{"outcome": "crashed"}), `field "outcome": "crashed" is not one of exited, trapped`},
		{"result exit_code missing", TypeResult, editJSON(t, result, map[string]any{"exit_code": nil}), `field "exit_code": missing`},
		{"result exit_code negative when exited", TypeResult, editJSON(t, result, map[string]any{"exit_code": -1}), `field "exit_code": must be 0–4294967295 when outcome is exited, got -1`},
		{"result exit_code over u32", TypeResult, editJSON(t, result, map[string]any{"exit_code": int64(1) << 32}), `field "exit_code": must be 0–4294967295`},
		{"result detail not string", TypeResult, editJSON(t, result, map[string]any{"detail": 5}), `field "detail": must be a string`},
		{"result stdout_size missing", TypeResult, editJSON(t, result, map[string]any{"stdout_size": nil}), `field "stdout_size": missing`},
		{"result stdout_size negative", TypeResult, editJSON(t, result, map[string]any{"stdout_size": -1}), `field "stdout_size": must be ≥ 0, got -1`},
		{"result stderr_size negative", TypeResult, editJSON(t, result, map[string]any{"stderr_size": -1}), `field "stderr_size": must be ≥ 0, got -1`},
		{"result stdout_truncated missing", TypeResult, editJSON(t, result, map[string]any{"stdout_truncated": nil}), `field "stdout_truncated": missing`},
		{"result stderr_truncated not bool", TypeResult, editJSON(t, result, map[string]any{"stderr_truncated": 0}), `field "stderr_truncated": must be a boolean, got a number`},
		{"result wall_time missing", TypeResult, editJSON(t, result, map[string]any{"wall_time_ms": nil}), `field "wall_time_ms": missing`},
		{"result wall_time negative", TypeResult, editJSON(t, result, map[string]any{"wall_time_ms": -2}), `field "wall_time_ms": must be ≥ 0`},
		{"result queue_time negative", TypeResult, editJSON(t, result, map[string]any{"queue_time_ms": -2}), `field "queue_time_ms": must be ≥ 0`},
		{"result receipt missing", TypeResult, editJSON(t, result, map[string]any{"receipt": nil}), `field "receipt": missing`},
		{"result receipt null", TypeResult, editJSON(t, result, map[string]any{"receipt": jsonNull}), `field "receipt": must not be null`},
		{"result receipt string", TypeResult, editJSON(t, result, map[string]any{"receipt": "eyJ9"}), `field "receipt": must be an object, got a string`},
		{"result receipt array", TypeResult, editJSON(t, result, map[string]any{"receipt": []int{}}), `field "receipt": must be an object, got an array`},
		// error
		{"error code missing", TypeError, []byte(`{"type":"error","detail":"x"}`), `error: field "code": missing`},
		{"error code unknown", TypeError, []byte(`{"type":"error","code":"oops","detail":"x"}`), `field "code": "oops" is not one of invalid_request, hash_mismatch`},
		{"error detail missing", TypeError, []byte(`{"type":"error","code":"internal"}`), `field "detail": missing`},
		// caps
		{"caps record missing", TypeCaps, []byte(`{"type":"caps"}`), `caps: field "record": missing`},
		{"caps record not object", TypeCaps, []byte(`{"type":"caps","record":"{}"}`), `field "record": must be an object, got a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := ParseControl(tt.body)
			require.Error(t, err, "body: %s", tt.body)
			assert.True(t, msg == nil, "a failed parse returns a nil interface, not a typed nil: %#v", msg)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.ErrorContains(t, err, tt.contains)

			typed, err := typedParsers[tt.typ](tt.body)
			assert.ErrorContains(t, err, tt.contains)
			assert.True(t, typed == nil || reflect.ValueOf(typed).IsNil(), "no message with an error")
		})
	}
}

func TestWIRE11_WIRE12_WIRE13_WIRE14_ParseStructureErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		contains string
	}{
		{"empty", ``, "control message is empty"},
		{"whitespace only", "  \n", "control message is empty"},
		{"array", `[{"type":"offer"}]`, "not a JSON object"},
		{"string", `"offer"`, "not a JSON object"},
		{"number", `42`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"truncated", `{"type":"caps_request"`, "not valid JSON"},
		{"garbage", `{"type":"caps_request",}`, "not valid JSON"},
		{"trailing object", `{"type":"caps_request"}{}`, "trailing data"},
		{"trailing garbage", `{"type":"caps_request"} x`, "trailing data"},
		{"invalid utf-8", "{\"type\":\"caps_request\",\"x\":\"\xff\"}", "not valid UTF-8"},
		{"no type", `{"job_id":"a"}`, `no "type" member`},
		{"type number", `{"type":1}`, `field "type": must be a string, got a number`},
		{"type null", `{"type":null}`, `field "type": must not be null`},
		{"unknown type", `{"type":"offer2"}`, `unknown message type "offer2"`},
		{"type wrong case", `{"type":"Offer"}`, `unknown message type "Offer"`},
		{"Type member only", `{"Type":"caps_request"}`, `no "type" member`},
		{"duplicate type", `{"type":"caps_request","type":"caps_request"}`, `duplicate member name "type"`},
		{"duplicate type escaped", `{"type":"caps_request","\u0074ype":"offer"}`, `duplicate member name "type"`},
		{"duplicate field", `{"type":"error","code":"internal","code":"timeout","detail":""}`, `duplicate member name "code"`},
		{"duplicate nested", `{"type":"caps","record":{"a":1,"b":{"c":[{"d":1,"d":2}]}}}`, `duplicate member name "d"`},
		{"duplicate among many members", `{"type":"caps","record":{` + manyKeys(40) + `,"k0":1}}`, `duplicate member name "k0"`},
		{"duplicate top-level among many", `{"type":"caps_request",` + manyKeys(40) + `,"k39":1}`, `duplicate member name "k39"`},
		{"duplicate in unknown member", `{"type":"caps_request","future":{"x":1,"x":1}}`, `duplicate member name "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseControl([]byte(tt.body))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.ErrorContains(t, err, tt.contains)
		})
	}
}

func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

func TestManyDistinctMembers(t *testing.T) {
	m, err := ParseControl([]byte(`{"type":"caps","record":{` + manyKeys(100) + `},` + manyKeys(100) + `}`))
	require.NoError(t, err)
	assert.Contains(t, string(m.(*CapsResponse).Record), `"k99":99}`)
}

// Same member names in different objects are not duplicates.
func TestSameNameInSiblingObjects(t *testing.T) {
	m, err := ParseControl([]byte(`{"type":"caps","record":{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}],"x":0}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}],"x":0}`, string(m.(*CapsResponse).Record))
}

func TestTypedParserWrongType(t *testing.T) {
	body := encode(t, messageByName("result"))
	_, err := ParseAccepted(body)
	assert.ErrorIs(t, err, ErrUnexpected)
	assert.EqualError(t, err, `unexpected message: expected accepted, got "result"`)
}

// Unknown members are ignored at every level the protocol defines, so a
// newer peer can add members without breaking an older one.
func TestWIRE16_UnknownMembersIgnored(t *testing.T) {
	for _, nm := range validMessages() {
		t.Run(nm.name, func(t *testing.T) {
			var m map[string]any
			require.NoError(t, json.Unmarshal(encode(t, nm.msg), &m))
			m["future_member"] = map[string]any{"nested": []any{1, "two", nil}}
			m["zz"] = nil
			if l, ok := m["limits"].(map[string]any); ok {
				l["cpu_ms"] = 5
			}
			body, err := json.Marshal(m)
			require.NoError(t, err)
			got, err := ParseControl(body)
			require.NoError(t, err)
			assert.Equal(t, nm.msg, got)
		})
	}
}

// Names match exactly: "JOB_ID" is an unknown member, not job_id (which
// encoding/json's case-insensitive matching would make it).
func TestWIRE15_MemberNamesCaseSensitive(t *testing.T) {
	body := offerJSON(t, map[string]any{"JOB_ID": "other", "Module_Size": 999})
	o, err := ParseOffer(body)
	require.NoError(t, err)
	assert.Equal(t, "job-42", o.JobID)
	assert.Equal(t, int64(8), o.ModuleSize)

	body = offerJSON(t, map[string]any{"job_id": nil, "JOB_ID": "job-42"})
	_, err = ParseOffer(body)
	assert.ErrorContains(t, err, `field "job_id": missing`)
}

func TestWIRE20_ParseTolerance(t *testing.T) {
	// Whitespace anywhere JSON allows it, members in any order, escapes.
	body := "\n {\r\n\t\"receipt\" : { \"b\" : [ 1 , 2 ] , \"a\" : \"\\u00e9\" } ,\n" +
		` "queue_time_ms":0, "wall_time_ms":1, "stderr_truncated":false, "stdout_truncated":false,` +
		` "stderr_size":0, "stdout_size":0, "exit_code":3, "outcome":"exited", "type" : "result" } `
	r, err := ParseResult([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, `{"b":[1,2],"a":"\u00e9"}`, string(r.Receipt), "receipt is compacted, not re-encoded")
	assert.Equal(t, 3, r.ExitCode)
	assert.Equal(t, "", r.Detail)
}

func TestWIRE23_ArchNormalizedOnParse(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64"} {
		o, err := ParseOffer(offerJSON(t, map[string]any{"arch": in, "require_arch": true}))
		require.NoError(t, err, in)
		assert.Equal(t, want, o.Arch)
		assert.True(t, o.RequireArch)
	}
}

func TestNormalizeArch(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"amd64", "amd64", false},
		{"arm64", "arm64", false},
		{"386", "386", false},
		{"riscv64", "riscv64", false},
		{"wasm", "wasm", false},
		{"x86_64", "amd64", false},
		{"aarch64", "arm64", false},
		{"", "", true},
		{"AMD64", "", true},
		{"X86_64", "", true},
		{"x86-64", "", true},
		{"i686", "", true},
		{" amd64", "", true},
	}
	for _, tt := range tests {
		got, err := phase.NormalizeArch(tt.in)
		if tt.wantErr {
			assert.ErrorContains(t, err, "unknown architecture", "%q", tt.in)
			assert.ErrorContains(t, err, fmt.Sprintf("%q", tt.in))
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got)
	}
}

func TestReadExpect(t *testing.T) {
	write := func(msgs ...Message) *bytes.Buffer {
		var buf bytes.Buffer
		for _, m := range msgs {
			require.NoError(t, WriteControl(&buf, m))
		}
		return &buf
	}
	rej := messageByName("rejected")

	got, err := ReadExpect(write(rej), TypeAccepted, TypeRejected)
	require.NoError(t, err)
	assert.Equal(t, rej, got)

	_, err = ReadExpect(write(messageByName("result")), TypeAccepted, TypeRejected)
	assert.ErrorIs(t, err, ErrUnexpected)
	assert.EqualError(t, err, "unexpected message: expected accepted|rejected, got result")

	em := &ErrorMsg{Code: phase.CodeTimeout, Detail: "no payload within 10s\nFAKE LOG LINE"}
	_, err = ReadExpect(write(em), TypeAccepted, TypeRejected)
	var peer *ErrorMsg
	require.ErrorAs(t, err, &peer)
	assert.Equal(t, phase.CodeTimeout, peer.Code)
	assert.NotErrorIs(t, err, ErrUnexpected)
	assert.EqualError(t, err, `expected accepted|rejected, got error: peer error timeout: "no payload within 10s\nFAKE LOG LINE"`)

	got, err = ReadExpect(write(em), TypeResult, TypeError)
	require.NoError(t, err, "error is returned as a message when expected")
	assert.Equal(t, phase.CodeTimeout, got.(*ErrorMsg).Code)

	_, err = ReadExpect(&bytes.Buffer{}, TypeOffer)
	assert.ErrorIs(t, err, io.EOF)
}

func TestWIRE8_ReadControlCap(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteFrame(&buf, make([]byte, MaxControlFrame+1)))
	_, err := ReadControl(&buf)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.ErrorContains(t, err, "control frame length 65537 exceeds cap 65536")

	// A control frame of exactly the cap is read (and then judged on content).
	body := append([]byte(`{"type":"caps_request","pad":"`), bytes.Repeat([]byte{'p'}, MaxControlFrame)...)
	body = append(body[:MaxControlFrame-2], '"', '}')
	buf.Reset()
	require.NoError(t, WriteFrame(&buf, body))
	m, err := ReadControl(&buf)
	require.NoError(t, err)
	assert.Equal(t, TypeCapsRequest, m.MessageType())
}

func TestJOB7_CheckPayload(t *testing.T) {
	o := testOffer()
	require.NoError(t, o.CheckPayload(&Payload{Args: []string{"a", "b"}}))
	err := o.CheckPayload(&Payload{Args: []string{"a"}})
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorContains(t, err, `payload: field "args": has 1 entries, offer announced args_count 2`)
}

func TestJOB11_CheckAccepted(t *testing.T) {
	o := testOffer() // 64 MB, 30 s
	ok := &Accepted{Limits: AppliedLimits{MemoryMB: 64, TimeoutMS: 30000}}
	require.NoError(t, o.CheckAccepted(ok))
	require.NoError(t, o.CheckAccepted(&Accepted{Limits: AppliedLimits{MemoryMB: 1, TimeoutMS: 1}}))
	err := o.CheckAccepted(&Accepted{Limits: AppliedLimits{MemoryMB: 65, TimeoutMS: 30000}})
	assert.ErrorContains(t, err, `accepted: field "limits.memory_mb": 65 exceeds the 64 requested`)
	err = o.CheckAccepted(&Accepted{Limits: AppliedLimits{MemoryMB: 64, TimeoutMS: 30001}})
	assert.ErrorContains(t, err, `accepted: field "limits.timeout_ms": 30001 exceeds the 30000 requested`)
}

func TestJOB10_CheckResult(t *testing.T) {
	a := messageByName("accepted").(*Accepted)
	ok := &Result{StdoutSize: int64(a.Limits.StdoutCap), StderrSize: int64(a.Limits.StderrCap)}
	require.NoError(t, a.CheckResult(ok))
	err := a.CheckResult(&Result{StdoutSize: int64(a.Limits.StdoutCap) + 1})
	assert.ErrorContains(t, err, `field "stdout_size": 1048577 exceeds the accepted stdout_cap 1048576`)
	err = a.CheckResult(&Result{StderrSize: int64(a.Limits.StderrCap) + 1})
	assert.ErrorContains(t, err, `field "stderr_size"`)
}

func TestDefaultCaps(t *testing.T) {
	assert.Equal(t, Caps{Control: 64 << 10, Module: 64 << 20, Stdin: 16 << 20, Stdout: 16 << 20, Stderr: 1 << 20}, DefaultCaps())
}

// TestExchange plays one whole job exchange over a pipe in each direction,
// in the order the spec fixes, with bufio readers as real callers use them.
func TestJOB2_JOB5_JOB9_Exchange(t *testing.T) {
	for _, haveModule := range []bool{false, true} {
		t.Run(fmt.Sprintf("have_module=%v", haveModule), func(t *testing.T) {
			module := []byte("\x00asm\x01\x00\x00\x00")
			stdin := []byte("hello")
			c2n, n2c := &bytes.Buffer{}, &bytes.Buffer{}
			caps := DefaultCaps()

			// client
			offer := testOffer()
			require.NoError(t, WriteControl(c2n, offer))

			// node
			nr := bufio.NewReader(c2n)
			m, err := ReadExpect(nr, TypeOffer)
			require.NoError(t, err)
			gotOffer := m.(*Offer)
			acc := &Accepted{HaveModule: haveModule, Limits: AppliedLimits{MemoryMB: 64, TimeoutMS: 30000, StdoutCap: 100, StderrCap: 100}}
			require.NoError(t, WriteControl(n2c, acc))

			// client
			cr := bufio.NewReader(n2c)
			m, err = ReadExpect(cr, TypeAccepted, TypeRejected)
			require.NoError(t, err)
			gotAcc := m.(*Accepted)
			require.NoError(t, offer.CheckAccepted(gotAcc))
			require.NoError(t, WriteControl(c2n, &Payload{Args: []string{"a", "b"}}))
			if !gotAcc.HaveModule {
				require.NoError(t, WriteFrame(c2n, module))
			}
			require.NoError(t, WriteFrame(c2n, stdin))

			// node
			m, err = ReadExpect(nr, TypePayload)
			require.NoError(t, err)
			require.NoError(t, gotOffer.CheckPayload(m.(*Payload)))
			if !haveModule {
				got, err := ReadDeclared(nr, gotOffer.ModuleSize, caps.Module, KindModule)
				require.NoError(t, err)
				assert.Equal(t, module, got)
			}
			gotStdin, err := ReadDeclared(nr, gotOffer.StdinSize, caps.Stdin, KindStdin)
			require.NoError(t, err)
			assert.Equal(t, stdin, gotStdin)
			_, err = nr.Peek(1)
			assert.ErrorIs(t, err, io.EOF, "client sent nothing after stdin")
			stdout := []byte("olleh\n")
			res := &Result{Outcome: phase.OutcomeExited, StdoutSize: int64(len(stdout)), Receipt: testReceipt}
			require.NoError(t, WriteControl(n2c, res))
			require.NoError(t, WriteFrame(n2c, stdout))
			require.NoError(t, WriteFrame(n2c, nil))

			// client
			m, err = ReadExpect(cr, TypeResult)
			require.NoError(t, err)
			gotRes := m.(*Result)
			require.NoError(t, gotAcc.CheckResult(gotRes))
			out, err := ReadDeclared(cr, gotRes.StdoutSize, caps.Stdout, KindStdout)
			require.NoError(t, err)
			assert.Equal(t, stdout, out)
			errOut, err := ReadDeclared(cr, gotRes.StderrSize, caps.Stderr, KindStderr)
			require.NoError(t, err)
			assert.Empty(t, errOut)
			_, err = ReadControl(cr)
			assert.True(t, errors.Is(err, io.EOF), "stream ends after stderr: %v", err)
		})
	}
}

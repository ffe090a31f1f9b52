package caps

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rejectLog records OnReject calls.
type rejectLog struct {
	mu      sync.Mutex
	reasons []string
}

func (l *rejectLog) hook(reason string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		reason = "BUG: nil error"
	}
	l.reasons = append(l.reasons, reason)
}

func (l *rejectLog) count(reason string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reasons {
		if r == reason {
			n++
		}
	}
	return n
}

func (l *rejectLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestKey(t *testing.T) {
	_, id := testKey(t, 1)
	k := Key(id)
	assert.Equal(t, "/phase-caps/"+id.String(), k)
	ns, rest, err := record.SplitKey(k)
	require.NoError(t, err)
	assert.Equal(t, Namespace, ns)
	assert.Equal(t, id.String(), rest)
	got, err := PeerFromKey(k)
	require.NoError(t, err)
	assert.Equal(t, id, got)
}

func TestCAP2_ValidatorValidate(t *testing.T) {
	good, _, idA := signedRecord(t, 1, nil)
	_, idB := testKey(t, 2)
	goodBytes := mustMarshal(t, good)
	expired, _, _ := signedRecord(t, 1, func(r *Record) { r.IssuedAt, r.ExpiresAt = testIssued-7200, testIssued-1 })
	future, _, _ := signedRecord(t, 1, func(r *Record) { r.IssuedAt, r.ExpiresAt = testIssued+3600, testIssued+7200 })
	tampered := *good
	tampered.Load.RunningJobs = 0

	tests := []struct {
		name   string
		key    string
		value  []byte
		reason string // "" = valid
	}{
		{"valid", Key(idA), goodBytes, ""},
		{"stored under another peer's key", Key(idB), goodBytes, ReasonWrongPeer},
		{"wrong namespace", "/pk/" + idA.String(), goodBytes, ReasonBadKey},
		{"garbage key", "/phase-caps/nonsense", goodBytes, ReasonBadKey},
		{"non-canonical key", "/phase-caps/" + peer.ToCid(idA).String(), goodBytes, ReasonBadKey},
		{"oversized", Key(idA), append(bytes.Clone(goodBytes), bytes.Repeat([]byte(" "), MaxRecordSize)...), ReasonTooLarge},
		{"garbage", Key(idA), []byte("\x00\x01garbage"), ReasonMalformed},
		{"empty", Key(idA), nil, ReasonMalformed},
		{"tampered", Key(idA), mustMarshal(t, &tampered), ReasonBadSignature},
		{"expired", Key(idA), mustMarshal(t, expired), ReasonExpired},
		{"issued in the future", Key(idA), mustMarshal(t, future), ReasonNotYetValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log rejectLog
			v := Validator{OnReject: log.hook, Now: fixedNow(testNow)}
			err := v.Validate(tc.key, tc.value)
			if tc.reason == "" {
				require.NoError(t, err)
				assert.Empty(t, log.all())
				return
			}
			require.Error(t, err)
			assert.Equal(t, tc.reason, RejectReason(err))
			assert.Equal(t, []string{tc.reason}, log.all(), "OnReject called once with the reason")
		})
	}
}

func TestValidatorZeroValueUsesWallClock(t *testing.T) {
	priv, id := testKey(t, 5)
	r := baseRecord(id)
	now := time.Now()
	r.IssuedAt, r.ExpiresAt = now.Unix(), now.Add(time.Hour).Unix()
	require.NoError(t, r.Sign(priv))
	require.NoError(t, Validator{}.Validate(Key(id), mustMarshal(t, &r)))
	// The fixture records (issued in 2027) are "in the future" by wall clock.
	fixture, _, fid := signedRecord(t, 1, nil)
	assert.ErrorIs(t, Validator{}.Validate(Key(fid), mustMarshal(t, fixture)), ErrNotYetValid)
}

func TestCAP2_ValidatorSelect(t *testing.T) {
	rec := func(seq uint64, expires int64, mod func(*Record)) []byte {
		r, _, _ := signedRecord(t, 1, func(r *Record) {
			r.Seq, r.ExpiresAt = seq, expires
			if mod != nil {
				mod(r)
			}
		})
		return mustMarshal(t, r)
	}
	_, idA := testKey(t, 1)
	key := Key(idA)
	forgedHigh := func() []byte { // seq 99 but signed by someone else
		r, _, _ := signedRecord(t, 1, func(r *Record) { r.Seq = 99 })
		r.Load.QueuedJobs = 7
		return mustMarshal(t, r)
	}()
	otherPeer, _, _ := signedRecord(t, 2, func(r *Record) { r.Seq = 100 })
	expiredHigh := rec(98, testIssued+5, func(r *Record) { r.IssuedAt = testIssued - 100 })

	s1, s2, s3 := rec(1, testExpires, nil), rec(2, testExpires, nil), rec(3, testExpires, nil)
	s2later := rec(2, testExpires+60, nil)
	s2loadA := rec(2, testExpires, func(r *Record) { r.Load.RunningJobs = 0 })
	s2loadB := rec(2, testExpires, func(r *Record) { r.Load.RunningJobs = 5 })

	tests := []struct {
		name   string
		values [][]byte
		want   []byte
	}{
		{"single", [][]byte{s1}, s1},
		{"highest seq", [][]byte{s1, s3, s2}, s3},
		{"highest seq first", [][]byte{s3, s1, s2}, s3},
		{"tie: later expiry", [][]byte{s2, s2later, s1}, s2later},
		{"tie: later expiry first", [][]byte{s2later, s2}, s2later},
		{"invalid never wins: forged", [][]byte{s1, forgedHigh, s2}, s2},
		{"invalid never wins: other peer", [][]byte{mustMarshal(t, otherPeer), s1}, s1},
		{"invalid never wins: expired", [][]byte{expiredHigh, s1}, s1},
		{"invalid never wins: garbage", [][]byte{[]byte("{}"), nil, s1}, s1},
	}
	v := Validator{Now: fixedNow(testNow)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i, err := v.Select(key, tc.values)
			require.NoError(t, err)
			assert.Equal(t, tc.want, tc.values[i])
		})
	}

	t.Run("full tie is order independent", func(t *testing.T) {
		i, err := v.Select(key, [][]byte{s2loadA, s2loadB})
		require.NoError(t, err)
		j, err := v.Select(key, [][]byte{s2loadB, s2loadA})
		require.NoError(t, err)
		assert.Equal(t, [][]byte{s2loadA, s2loadB}[i], [][]byte{s2loadB, s2loadA}[j])
	})
	t.Run("identical values pick the first", func(t *testing.T) {
		i, err := v.Select(key, [][]byte{s2, s2})
		require.NoError(t, err)
		assert.Equal(t, 0, i)
	})
	t.Run("all invalid", func(t *testing.T) {
		_, err := v.Select(key, [][]byte{forgedHigh, []byte("x")})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "none of 2 values")
	})
	t.Run("empty", func(t *testing.T) {
		_, err := v.Select(key, nil)
		require.Error(t, err)
	})
	t.Run("no OnReject from Select", func(t *testing.T) {
		var log rejectLog
		v := Validator{OnReject: log.hook, Now: fixedNow(testNow)}
		_, err := v.Select(key, [][]byte{forgedHigh, s1})
		require.NoError(t, err)
		assert.Empty(t, log.all())
	})
}

func TestTruncateKeepsErrorsShort(t *testing.T) {
	long := "/phase-caps/" + strings.Repeat("x", 5000)
	err := Validator{}.Validate(long, nil)
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 300)
}

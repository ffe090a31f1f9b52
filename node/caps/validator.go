package caps

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/phase-protocol/plasm/node/phase"
)

// Namespace is the DHT record namespace of capability records.
const Namespace = "phase-caps"

const keyPrefix = "/" + Namespace + "/"

// Key is the DHT key of a peer's capability record: /phase-caps/<peer-id>.
func Key(id peer.ID) string { return keyPrefix + id.String() }

// PeerFromKey returns the peer a /phase-caps/ key names. Only the canonical
// spelling of the peer ID is accepted, so a record has exactly one key.
func PeerFromKey(key string) (peer.ID, error) {
	s, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %s is not in namespace %s", ErrBadKey, phase.Quote(key), keyPrefix)
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrBadKey, phase.Quote(key), err)
	}
	if id.String() != s {
		return "", fmt.Errorf("%w: %s: peer id not in canonical form", ErrBadKey, phase.Quote(key))
	}
	return id, nil
}

// Reject reasons passed to Validator.OnReject (and returned by RejectReason).
const (
	ReasonTooLarge     = "too_large"
	ReasonMalformed    = "malformed"
	ReasonBadPeerID    = "bad_peer_id"
	ReasonBadSignature = "bad_signature"
	ReasonExpired      = "expired"
	ReasonNotYetValid  = "not_yet_valid"
	ReasonWrongPeer    = "wrong_peer"
	ReasonBadKey       = "bad_key"
	ReasonOther        = "other"
)

// RejectReason classifies an error from Parse, Verify or Validator.Validate
// into a short reason label suitable for a metric.
func RejectReason(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrBadPeerID):
		return ReasonBadPeerID
	case errors.Is(err, ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, ErrExpired):
		return ReasonExpired
	case errors.Is(err, ErrNotYetValid):
		return ReasonNotYetValid
	case errors.Is(err, ErrWrongPeer):
		return ReasonWrongPeer
	case errors.Is(err, ErrBadKey):
		return ReasonBadKey
	default:
		return ReasonOther
	}
}

// Validator is the go-libp2p-record validator for the phase-caps namespace:
// register it with dht.NamespacedValidator(caps.Namespace, caps.Validator{}).
// The zero value is ready to use.
type Validator struct {
	// OnReject, when set, is called once for every value Validate refuses,
	// with a reason from the Reason* constants. It must be safe for
	// concurrent use. Note that the DHT also re-validates its stored record
	// before Select on a PUT, so a stored record that has since expired is
	// reported here too.
	OnReject func(reason string, err error)
	// Now, when set, replaces time.Now (tests, simulators in virtual time).
	Now func() time.Time
}

var _ record.Validator = Validator{}

func (v Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Validate accepts value only if it is a well-formed record, of at most
// MaxRecordSize bytes, for exactly the peer the key names, signed by that
// peer's key, and not expired.
func (v Validator) Validate(key string, value []byte) error {
	_, err := v.check(key, value)
	if err != nil && v.OnReject != nil {
		v.OnReject(RejectReason(err), err)
	}
	return err
}

func (v Validator) check(key string, value []byte) (*Record, error) {
	if len(value) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(value), MaxRecordSize)
	}
	id, err := PeerFromKey(key)
	if err != nil {
		return nil, err
	}
	r, err := Parse(value)
	if err != nil {
		return nil, err
	}
	if r.PeerID != id.String() {
		return nil, fmt.Errorf("%w: record for %s stored under key of %s", ErrWrongPeer, r.PeerID, id)
	}
	if err := Verify(r, v.now()); err != nil {
		return nil, err
	}
	return r, nil
}

// Select returns the index of the best valid value: highest seq, then the
// later expiry, then (so the choice never depends on order) the
// lexicographically greater bytes. Invalid values never win; if none is
// valid, Select returns an error. Rejections here are not reported to
// OnReject: Select sees values that Validate has already judged.
func (v Validator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestRec *Record
	for i, val := range values {
		r, err := v.check(key, val)
		if err != nil {
			continue
		}
		if best < 0 || better(r, val, bestRec, values[best]) {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("select %s: none of %d values is a valid capability record", phase.Quote(key), len(values))
	}
	return best, nil
}

func better(r *Record, rv []byte, cur *Record, cv []byte) bool {
	if r.Seq != cur.Seq {
		return r.Seq > cur.Seq
	}
	if r.ExpiresAt != cur.ExpiresAt {
		return r.ExpiresAt > cur.ExpiresAt
	}
	return bytes.Compare(rv, cv) > 0
}

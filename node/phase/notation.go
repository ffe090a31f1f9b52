package phase

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// HashPrefix starts every hash Phase writes: "sha256:" and 64 lowercase hex.
const HashPrefix = "sha256:"

// HashBytes is the protocol's hash notation for b.
func HashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return HashPrefix + hex.EncodeToString(sum[:])
}

// IsHash reports whether s is "sha256:" followed by 64 lowercase hex digits.
func IsHash(s string) bool {
	h, ok := strings.CutPrefix(s, HashPrefix)
	return ok && IsLowerHex(h, 64)
}

// CheckHash is IsHash with an error that says what is wanted.
func CheckHash(s string) error {
	if s == "" {
		return fmt.Errorf(`is empty, want "sha256:" followed by 64 lowercase hex digits`)
	}
	if !IsHash(s) {
		return fmt.Errorf(`%s is not "sha256:" followed by 64 lowercase hex digits`, Quote(s))
	}
	return nil
}

// IsLowerHex reports whether s is exactly n characters of 0-9 a-f.
func IsLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewNonce returns a fresh offer nonce: 32 bytes from crypto/rand as 64
// lowercase hex characters (JOB-15).
func NewNonce() string {
	var b [NonceHexLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// NewJobID returns a fresh random job id: 16 bytes as 32 hex characters.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CheckNonce checks the nonce form: 64 lowercase hex characters.
func CheckNonce(s string) error {
	if len(s) != NonceHexLen {
		return fmt.Errorf("must be %d lowercase hex characters, got %d characters", NonceHexLen, len(s))
	}
	if !IsLowerHex(s, NonceHexLen) {
		return fmt.Errorf("must be %d lowercase hex characters, got %s", NonceHexLen, Quote(s))
	}
	return nil
}

// CheckJobID checks the job id form: 1–128 characters of A-Z a-z 0-9 . _ : -
// (the same in offers and receipts).
func CheckJobID(s string) error {
	if len(s) < 1 || len(s) > MaxJobIDLen {
		return fmt.Errorf("must be 1–%d characters, got %d", MaxJobIDLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("byte %d (%q) is not one of A-Z a-z 0-9 . _ : -", i, c)
		}
	}
	return nil
}

// ShortID shortens a peer ID (or any long identifier) for a log line or a
// one-line reason: the first 6 and last 6 characters.
func ShortID(s string) string {
	if len(s) <= 14 {
		return s
	}
	return s[:6] + ".." + s[len(s)-6:]
}

// maxQuoted is how much of a value from outside an error message quotes.
const maxQuoted = 80

// Quote shows a value that came from outside (a peer, a file, a user) in an
// error message: quoted with Go escapes, and shortened, so hostile input can
// neither break a log line nor make it arbitrarily long.
func Quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q…(%d bytes)", s[:maxQuoted], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// Clip bounds free text from a peer or a guest (an error detail, a trap
// message) before it goes into a message or a log line; log handlers
// escape what is left.
func Clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

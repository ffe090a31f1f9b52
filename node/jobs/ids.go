package jobs

import (
	"crypto/rand"
	"encoding/hex"
)

// NewNonce returns a fresh random 32-byte nonce in lowercase hex.
func NewNonce() string {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// NewJobID returns a random job id (16 bytes, hex).
func NewJobID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

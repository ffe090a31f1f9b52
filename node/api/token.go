package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/phase-protocol/plasm/node/datadir"
)

// TokenFile is the API token's file name in the data directory.
const TokenFile = "api.token"

const (
	tokenMode        fs.FileMode = 0o600
	tokenBytes                   = 32 // random bytes, written as 64 hex characters
	maxTokenFileSize             = 4096
)

// TokenPath is where the token is read from: configured, relative to the
// data directory, or <dataDir>/api.token. explicit says the path was
// configured, so a missing file is an error rather than "no token".
func TokenPath(dataDir, configured string) (path string, explicit bool) {
	if configured == "" {
		return filepath.Join(dataDir, TokenFile), false
	}
	if !filepath.IsAbs(configured) {
		configured = filepath.Join(dataDir, configured)
	}
	return configured, true
}

// LoadToken reads the node's API token. Like the identity key, the file
// must be a regular file that only its owner can read or write, owned by
// the user running the node: anyone who can read it can act as the
// operator, anyone who can replace it can lock the operator out.
func LoadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("api token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("api token file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("api token file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&^tokenMode != 0 {
		return "", fmt.Errorf("api token file %s has mode %04o, want 0600 (owner read/write only); the token may have been exposed: make a new one (plasmd init --api-token after removing it)", path, perm)
	}
	if err := checkOwner(st); err != nil {
		return "", fmt.Errorf("api token file %s: %w", path, err)
	}
	if st.Size() > maxTokenFileSize {
		return "", fmt.Errorf("api token file %s: %d bytes, at most %d", path, st.Size(), maxTokenFileSize)
	}
	b := make([]byte, st.Size())
	if _, err := f.Read(b); err != nil && st.Size() > 0 {
		return "", fmt.Errorf("api token file %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("api token file %s: want one token of at least 16 characters without spaces", path)
	}
	return tok, nil
}

// ReadClientToken is the client side: the token in path, or "" when the
// file does not exist. It does not insist on ownership (a client may run as
// another user the operator gave the file to), only on a readable token.
func ReadClientToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("api token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("api token file %s: want one token without spaces", path)
	}
	return tok, nil
}

// CreateToken writes a new random token to path (mode 0600) unless a file
// is already there, and returns the token in the file. The token is
// written to a private temp file and linked into place, so the file never
// exists half-written or readable by others.
func CreateToken(path string) (string, error) {
	if _, err := os.Lstat(path); err == nil {
		return LoadToken(path)
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tok := hex.EncodeToString(raw)
	if err := datadir.WriteFile(nil, path, []byte(tok+"\n"), tokenMode, false); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadToken(path) // another process won the race
		}
		return "", fmt.Errorf("api token: %w", err)
	}
	return tok, nil
}

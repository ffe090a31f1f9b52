// Package identity holds a node's one persistent Ed25519 key: it is both the
// libp2p identity (peer ID) and the key that signs receipts.
//
// On disk the key is the raw 32-byte Ed25519 seed in <dataDir>/identity.key,
// mode 0600, in a data directory with mode 0700. The file is created so that
// it is never readable by others, never seen half-written, and when several
// processes start at once exactly one key wins and all of them use it.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// KeyFile is the key's file name inside the data directory.
const KeyFile = "identity.key"

const (
	dirMode  fs.FileMode = 0o700
	keyMode  fs.FileMode = 0o600
	seedSize             = ed25519.SeedSize
)

// Identity is a node's key pair and the peer ID derived from it.
type Identity struct {
	PrivKey crypto.PrivKey // libp2p Ed25519 private key
	ID      peer.ID
}

// FromSeed builds an identity from a 32-byte Ed25519 seed (the same bytes
// the key file holds). The simulator uses it for reproducible identities.
func FromSeed(seed []byte) (*Identity, error) {
	if len(seed) != seedSize {
		return nil, fmt.Errorf("identity: seed must be %d bytes, got %d", seedSize, len(seed))
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("identity: build key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: derive peer ID: %w", err)
	}
	return &Identity{PrivKey: priv, ID: id}, nil
}

// Generate returns a fresh random identity that is not stored anywhere.
func Generate() (*Identity, error) {
	seed := make([]byte, seedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("identity: random seed: %w", err)
	}
	return FromSeed(seed)
}

// Ed25519 returns the standard-library form of the private key, or nil when
// PrivKey is not an Ed25519 key.
func (i *Identity) Ed25519() ed25519.PrivateKey {
	if i.PrivKey == nil || i.PrivKey.Type() != pb.KeyType_Ed25519 {
		return nil
	}
	raw, err := i.PrivKey.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil
	}
	return ed25519.PrivateKey(raw)
}

// PublicKey returns the 32-byte Ed25519 public key, or nil when PrivKey is
// not an Ed25519 key.
func (i *Identity) PublicKey() ed25519.PublicKey {
	priv := i.Ed25519()
	if priv == nil {
		return nil
	}
	return priv.Public().(ed25519.PublicKey)
}

// PublicKeyHex is the public key in lowercase hex, as receipts carry it.
func (i *Identity) PublicKeyHex() string {
	return hex.EncodeToString(i.PublicKey())
}

// PublicKeyFromPeerID extracts the Ed25519 public key embedded in an
// Ed25519 peer ID. Any other kind of peer ID is an error: a verifier must
// learn the key from the peer it talked to, never from the receipt.
func PublicKeyFromPeerID(id peer.ID) (ed25519.PublicKey, error) {
	if id == "" {
		return nil, errors.New("identity: empty peer ID")
	}
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("identity: peer ID %s carries no public key (only Ed25519 peer IDs are supported): %w", id, err)
	}
	if pk.Type() != pb.KeyType_Ed25519 {
		return nil, fmt.Errorf("identity: peer ID %s has a %s key, want Ed25519", id, pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil {
		return nil, fmt.Errorf("identity: peer ID %s: raw key: %w", id, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: peer ID %s: Ed25519 key is %d bytes, want %d", id, len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// PeerIDFromPublicKey derives the peer ID of an Ed25519 public key.
func PeerIDFromPublicKey(pub ed25519.PublicKey) (peer.ID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("identity: Ed25519 public key must be %d bytes, got %d", ed25519.PublicKeySize, len(pub))
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("identity: public key: %w", err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", fmt.Errorf("identity: derive peer ID: %w", err)
	}
	return id, nil
}

// Load reads the identity from dataDir/identity.key. A missing file is an
// error wrapping fs.ErrNotExist; a file of the wrong size or with
// permissions beyond 0600, or a data directory open to group or others, is an
// error too. Nothing is ever created or replaced.
func Load(dataDir string) (*Identity, error) {
	if err := checkDir(dataDir); err != nil {
		return nil, err
	}
	return loadKey(filepath.Join(dataDir, KeyFile))
}

// LoadOrCreate loads the identity in dataDir, creating dataDir (mode 0700)
// and a new key (mode 0600) when missing. When several processes race, the
// first key linked into place wins and every caller returns that key.
func LoadOrCreate(dataDir string) (*Identity, error) {
	if dataDir == "" {
		return nil, errors.New("identity: empty data directory path")
	}
	if err := os.MkdirAll(dataDir, dirMode); err != nil {
		return nil, fmt.Errorf("identity: create data directory: %w", err)
	}
	if err := checkDir(dataDir); err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, KeyFile)
	id, err := loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	return create(dataDir, path)
}

// create writes a fresh seed to a private temp file and hard-links it into
// place. os.Link fails when the target exists, so of several racing
// creators exactly one wins; the losers load the winner's key. Until the link
// the key file does not exist, so no one can read a partial key.
func create(dataDir, path string) (*Identity, error) {
	seed := make([]byte, seedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("identity: random seed: %w", err)
	}
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("identity: random suffix: %w", err)
	}
	tmp := filepath.Join(dataDir, "."+KeyFile+".tmp-"+hex.EncodeToString(suffix))
	if err := writeNew(tmp, seed); err != nil {
		return nil, err
	}
	defer os.Remove(tmp)

	linkErr := os.Link(tmp, path)
	if linkErr != nil && !errors.Is(linkErr, fs.ErrExist) {
		return nil, fmt.Errorf("identity: link key into place: %w", linkErr)
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("identity: remove temp key file: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return nil, err
	}
	if linkErr != nil {
		// Another process won the race: use its key.
		return loadKey(path)
	}
	return FromSeed(seed)
}

func writeNew(path string, seed []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyMode)
	if err != nil {
		return fmt.Errorf("identity: create temp key file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("identity: close temp key file: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := f.Write(seed); err != nil {
		return fmt.Errorf("identity: write temp key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("identity: sync temp key file: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("identity: open data directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("identity: sync data directory: %w", err)
	}
	return nil
}

func checkDir(dataDir string) error {
	if dataDir == "" {
		return errors.New("identity: empty data directory path")
	}
	st, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("identity: data directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("identity: data directory %s is not a directory", dataDir)
	}
	// Others who may write the directory could swap the key for theirs.
	// Read access alone is harmless: the key file itself is 0600. (An
	// existing 0755 directory, as systemd's StateDirectory makes, is fine.)
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("identity: data directory %s has mode %04o: group or others may write it and replace the key; fix with: chmod 700 %s", dataDir, perm, dataDir)
	}
	return nil
}

func loadKey(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: stat key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&^keyMode != 0 {
		return nil, fmt.Errorf("identity: key file %s has mode %04o, want 0600 (owner read/write only); the key may have been exposed, refusing to use it", path, perm)
	}
	if st.Size() != seedSize {
		return nil, fmt.Errorf("identity: key file %s is corrupt: expected %d bytes (raw Ed25519 seed), got %d", path, seedSize, st.Size())
	}
	seed := make([]byte, seedSize)
	if _, err := io.ReadFull(f, seed); err != nil {
		return nil, fmt.Errorf("identity: read key file %s: %w", path, err)
	}
	id, err := FromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("identity: key file %s: %w", path, err)
	}
	return id, nil
}

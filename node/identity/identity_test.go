package identity

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helperEnv makes the re-executed test binary act as one racing process.
const helperEnv = "PLASM_IDENTITY_RACE_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(raceHelper(dir))
	}
	os.Exit(m.Run())
}

// raceHelper waits for the parent's go signal on stdin so that both
// processes call LoadOrCreate at about the same moment, then prints the ID.
func raceHelper(dir string) int {
	if _, err := bufio.NewReader(os.Stdin).ReadByte(); err != nil {
		fmt.Fprintln(os.Stderr, "read go signal:", err)
		return 2
	}
	id, err := LoadOrCreate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(id.ID.String())
	return 0
}

func TestLoadOrCreateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "node")
	created, err := LoadOrCreate(dir)
	require.NoError(t, err)

	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "data dir mode")
	st, err = os.Stat(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "key file mode")
	assert.Equal(t, int64(32), st.Size())

	loaded, err := Load(dir)
	require.NoError(t, err)
	again, err := LoadOrCreate(dir)
	require.NoError(t, err)
	assert.Equal(t, created.ID, loaded.ID)
	assert.Equal(t, created.ID, again.ID)
	assert.Equal(t, created.Ed25519(), loaded.Ed25519())

	// The file holds exactly the seed.
	seed, err := os.ReadFile(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	assert.Equal(t, created.Ed25519().Seed(), seed)

	// The libp2p key, the stdlib key and the peer ID agree.
	pid, err := peer.IDFromPrivateKey(loaded.PrivKey)
	require.NoError(t, err)
	assert.Equal(t, loaded.ID, pid)
	assert.Equal(t, hex.EncodeToString(loaded.PublicKey()), loaded.PublicKeyHex())
	sig := ed25519.Sign(loaded.Ed25519(), []byte("msg"))
	ok, err := loaded.PrivKey.GetPublic().Verify([]byte("msg"), sig)
	require.NoError(t, err)
	assert.True(t, ok, "libp2p public key must verify a stdlib signature")

	// No temp files are left behind.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, KeyFile, entries[0].Name())
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	_, err := Load(dir)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(dir, KeyFile))
	assert.ErrorIs(t, err, os.ErrNotExist, "Load must not create a key")

	_, err = Load(filepath.Join(dir, "nope"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestID3_RaceGoroutines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	const n = 8
	ids := make([]peer.ID, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id, err := LoadOrCreate(dir)
			errs[i] = err
			if err == nil {
				ids[i] = id.ID
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "goroutine %d", i)
		assert.Equal(t, ids[0], ids[i], "goroutine %d got a different key", i)
	}
	final, err := Load(dir)
	require.NoError(t, err)
	assert.Equal(t, ids[0], final.ID)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the key file remains")
}

func TestID3_RaceProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	const n = 2
	type proc struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout bytes.Buffer
		stderr bytes.Buffer
	}
	procs := make([]*proc, n)
	for i := range procs {
		p := &proc{cmd: exec.Command(os.Args[0], "-test.run=^$")}
		p.cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		p.cmd.Stdout = &p.stdout
		p.cmd.Stderr = &p.stderr
		var err error
		p.stdin, err = p.cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, p.cmd.Start())
		procs[i] = p
	}
	// Release both at once; each blocks on stdin until now.
	for _, p := range procs {
		_, err := p.stdin.Write([]byte{1})
		require.NoError(t, err)
		require.NoError(t, p.stdin.Close())
	}
	var got []string
	for i, p := range procs {
		require.NoError(t, p.cmd.Wait(), "process %d stderr: %s", i, p.stderr.String())
		got = append(got, strings.TrimSpace(p.stdout.String()))
	}
	require.NotEmpty(t, got[0])
	assert.Equal(t, got[0], got[1], "both processes must end up with the same key")
	final, err := Load(dir)
	require.NoError(t, err)
	assert.Equal(t, got[0], final.ID.String())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the key file remains")
}

func TestID3_CorruptAndUnsafeFiles(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		wantErr string
	}{
		{"empty", []byte{}, 0o600, "expected 32 bytes (raw Ed25519 seed), got 0"},
		{"short", make([]byte, 31), 0o600, "expected 32 bytes (raw Ed25519 seed), got 31"},
		{"long", make([]byte, 64), 0o600, "expected 32 bytes (raw Ed25519 seed), got 64"},
		{"group readable", make([]byte, 32), 0o640, "mode 0640, want 0600"},
		{"world readable", make([]byte, 32), 0o644, "mode 0644, want 0600"},
		{"executable", make([]byte, 32), 0o700, "mode 0700, want 0600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			require.NoError(t, os.Mkdir(dir, 0o700))
			path := filepath.Join(dir, KeyFile)
			require.NoError(t, os.WriteFile(path, tt.content, 0o600))
			require.NoError(t, os.Chmod(path, tt.mode))

			_, err := Load(dir)
			require.ErrorContains(t, err, tt.wantErr)
			_, err = LoadOrCreate(dir)
			require.ErrorContains(t, err, tt.wantErr)

			// Never silently replaced.
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tt.content, after)
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, tt.mode, st.Mode().Perm())
		})
	}
}

func TestReadOnlyKeyAccepted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	id, err := LoadOrCreate(dir)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(filepath.Join(dir, KeyFile), 0o400))
	loaded, err := Load(dir)
	require.NoError(t, err)
	assert.Equal(t, id.ID, loaded.ID)
}

func TestDataDirChecks(t *testing.T) {
	base := t.TempDir()

	open := filepath.Join(base, "open")
	require.NoError(t, os.Mkdir(open, 0o700))
	require.NoError(t, os.Chmod(open, 0o777))
	_, err := LoadOrCreate(open)
	require.ErrorContains(t, err, "mode 0777: group or others may write it")
	_, err = os.Stat(filepath.Join(open, KeyFile))
	assert.ErrorIs(t, err, os.ErrNotExist, "no key may be created in an open directory")
	_, err = Load(open)
	require.ErrorContains(t, err, "mode 0777")

	readable := filepath.Join(base, "readable")
	require.NoError(t, os.Mkdir(readable, 0o700))
	require.NoError(t, os.Chmod(readable, 0o755))
	_, err = LoadOrCreate(readable)
	require.NoError(t, err, "a directory others may only read is fine: the key file is 0600")

	file := filepath.Join(base, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = LoadOrCreate(file)
	require.Error(t, err)
	_, err = Load(file)
	require.ErrorContains(t, err, "not a directory")

	_, err = LoadOrCreate("")
	require.ErrorContains(t, err, "empty data directory")
	_, err = Load("")
	require.ErrorContains(t, err, "empty data directory")

	// A key file that is a directory is not silently replaced.
	odd := filepath.Join(base, "odd")
	require.NoError(t, os.MkdirAll(filepath.Join(odd, KeyFile), 0o700))
	require.NoError(t, os.Chmod(odd, 0o700))
	_, err = LoadOrCreate(odd)
	require.ErrorContains(t, err, "not a regular file")
}

func TestID1_PeerIDPublicKeyRoundTrip(t *testing.T) {
	for i := range 20 {
		id, err := Generate()
		require.NoError(t, err)
		pub, err := PublicKeyFromPeerID(id.ID)
		require.NoError(t, err)
		assert.Equal(t, id.PublicKey(), pub, "iteration %d", i)
		back, err := PeerIDFromPublicKey(pub)
		require.NoError(t, err)
		assert.Equal(t, id.ID, back)
		// Through the string form, as peer IDs travel in receipts.
		decoded, err := peer.Decode(id.ID.String())
		require.NoError(t, err)
		pub2, err := PublicKeyFromPeerID(decoded)
		require.NoError(t, err)
		assert.Equal(t, pub, pub2)
	}
}

func TestFromSeedKnownAnswer(t *testing.T) {
	// DESIGN.md §3 legacy known answer: seed 00 01 … 1f.
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	id, err := FromSeed(seed)
	require.NoError(t, err)
	assert.Equal(t, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", id.PublicKeyHex())
	_, err = FromSeed(seed[:31])
	require.ErrorContains(t, err, "seed must be 32 bytes, got 31")
}

func TestID1_NonEd25519PeerIDRejected(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	require.NoError(t, err)
	secpID, err := peer.IDFromPrivateKey(secp)
	require.NoError(t, err)

	// A sha256-hashed peer ID (as RSA keys get) embeds no key at all.
	digest, err := mh.Sum([]byte("some rsa key"), mh.SHA2_256, -1)
	require.NoError(t, err)
	hashedID := peer.ID(digest)

	tests := []struct {
		name    string
		id      peer.ID
		wantErr string
	}{
		{"secp256k1", secpID, "want Ed25519"},
		{"hashed", hashedID, "carries no public key"},
		{"empty", "", "empty peer ID"},
		{"garbage", peer.ID("not a multihash"), "carries no public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := PublicKeyFromPeerID(tt.id)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Nil(t, pub)
		})
	}

	_, err = PeerIDFromPublicKey(make([]byte, 31))
	require.ErrorContains(t, err, "must be 32 bytes, got 31")
}

func TestNonEd25519IdentityHasNoEd25519Key(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(nil)
	require.NoError(t, err)
	id := &Identity{PrivKey: secp}
	assert.Nil(t, id.Ed25519())
	assert.Nil(t, id.PublicKey())
	assert.Equal(t, "", id.PublicKeyHex())
}

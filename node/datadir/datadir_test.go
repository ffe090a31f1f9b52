package datadir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failing is the real filesystem with one step failing as a full or
// read-only disk makes it fail.
type failing struct {
	OS
	step string // "create", "write", "sync", "rename", "link", "syncdir"
	err  error
}

type failingFile struct {
	*os.File
	f *failing
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.f.step == "write" {
		// A full disk takes part of the data, then fails.
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: f.f.err}
	}
	return f.File.Write(p)
}

func (f failingFile) Sync() error {
	if f.f.step == "sync" {
		return &fs.PathError{Op: "sync", Path: f.Name(), Err: f.f.err}
	}
	return f.File.Sync()
}

func (f *failing) CreateTemp(dir, pattern string) (File, error) {
	if f.step == "create" {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: f.err}
	}
	file, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return failingFile{file, f}, nil
}

func (f *failing) Rename(o, n string) error {
	if f.step == "rename" {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: f.err}
	}
	return f.OS.Rename(o, n)
}

func (f *failing) Link(o, n string) error {
	if f.step == "link" {
		return &os.LinkError{Op: "link", Old: o, New: n, Err: f.err}
	}
	return f.OS.Link(o, n)
}

func (f *failing) SyncDir(dir string) error {
	if f.step == "syncdir" {
		return &fs.PathError{Op: "sync", Path: dir, Err: f.err}
	}
	return f.OS.SyncDir(dir)
}

// A write that fails at any step leaves the old file whole and no temp
// file behind, and says what happened to the disk.
func TestWriteFileFailureKeepsOldFile(t *testing.T) {
	for _, step := range []string{"create", "write", "sync", "rename"} {
		for _, tc := range []struct {
			err  error
			says string
		}{{syscall.EROFS, "read-only"}, {syscall.ENOSPC, "full"}} {
			t.Run(step+"/"+tc.says, func(t *testing.T) {
				dir := t.TempDir()
				p := filepath.Join(dir, "peers.json")
				require.NoError(t, WriteFile(nil, p, []byte(`["old"]`), 0o600, true))
				err := WriteFile(&failing{step: step, err: tc.err}, p, []byte(`["new","and longer"]`), 0o600, true)
				require.Error(t, err)
				assert.ErrorIs(t, err, tc.err)
				assert.Contains(t, err.Error(), p, "the error names the file")
				assert.Contains(t, err.Error(), "the disk is "+tc.says)
				b, rerr := os.ReadFile(p)
				require.NoError(t, rerr)
				assert.Equal(t, `["old"]`, string(b), "the old file is untouched")
				entries, _ := os.ReadDir(dir)
				assert.Len(t, entries, 1, "no temp file left behind: %v", entries)
			})
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, WriteFile(OS{}, p, []byte("one"), 0o600, true))
	require.NoError(t, WriteFile(OS{}, p, []byte("two"), 0o600, true))
	b, _ := os.ReadFile(p)
	assert.Equal(t, "two", string(b))
	st, _ := os.Stat(p)
	assert.Equal(t, fs.FileMode(0o600), st.Mode().Perm())

	// Without replace the first file wins.
	err := WriteFile(OS{}, p, []byte("three"), 0o600, false)
	require.ErrorIs(t, err, fs.ErrExist)
	b, _ = os.ReadFile(p)
	assert.Equal(t, "two", string(b))
	entries, _ := os.ReadDir(dir)
	assert.Len(t, entries, 1)
}

func TestProbeAndHealth(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Probe(nil, dir))
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "the probe cleans up")
	err := Probe(&failing{step: "create", err: syscall.EROFS}, dir)
	require.Error(t, err)

	var h Health
	assert.Empty(t, h.Problems())
	h.Set("data_dir", err)
	h.Set("peers", errors.New("saving peers: disk full"))
	got := h.Problems()
	require.Len(t, got, 2)
	assert.Equal(t, "data_dir", got[0].Part)
	assert.Contains(t, got[0].Error, "read-only")
	h.Set("data_dir", nil)
	assert.Len(t, h.Problems(), 1)
}

func TestProbeCreatesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	require.NoError(t, Probe(nil, dir))
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), st.Mode().Perm())
}

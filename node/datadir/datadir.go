// Package datadir writes the node's files in its data directory so that a
// crash, a full disk or a read-only disk never leaves a file half-written:
// every write goes to a temp file in the same directory, is synced, and is
// renamed (or linked) into place. It also tracks whether the directory is
// writable, so that /healthz can say why the node runs without its disk.
//
// The filesystem is an interface so that a unit test can make a step fail
// the way a full or read-only disk does; production uses OS.
package datadir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// File is an open temp file.
type File interface {
	io.Writer
	Name() string
	Chmod(fs.FileMode) error
	Sync() error
	Close() error
}

// FS is the part of the filesystem the node writes through.
type FS interface {
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Link(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
	MkdirAll(path string, perm fs.FileMode) error
}

// OS is the real filesystem.
type OS struct{}

func (OS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }
func (OS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (OS) Link(oldpath, newpath string) error           { return os.Link(oldpath, newpath) }
func (OS) Remove(name string) error                     { return os.Remove(name) }
func (OS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFile writes data to path atomically with mode: a reader sees the old
// file or the new one, never a part. With replace false an existing file is
// left alone and the error wraps fs.ErrExist. On any error the temp file is
// removed and the old file is untouched.
func WriteFile(fsys FS, path string, data []byte, mode fs.FileMode, replace bool) (err error) {
	if fsys == nil {
		fsys = OS{}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := fsys.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, explain(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = fsys.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, explain(err))
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, explain(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: sync: %w", path, explain(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: close: %w", path, explain(err))
	}
	if replace {
		err = fsys.Rename(tmp, path)
	} else {
		// Link fails when path exists: of two racing writers one wins.
		if err = fsys.Link(tmp, path); err == nil {
			_ = fsys.Remove(tmp)
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, explain(err))
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("writing %s: sync directory: %w", path, explain(err))
	}
	return nil
}

// Probe checks that dir is writable by writing and removing a small file.
// It creates dir (mode 0700) when missing.
func Probe(fsys FS, dir string) error {
	if fsys == nil {
		fsys = OS{}
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, explain(err))
	}
	p := filepath.Join(dir, "probe")
	if err := WriteFile(fsys, p, []byte("ok\n"), 0o600, true); err != nil {
		return err
	}
	if err := fsys.Remove(p); err != nil {
		return fmt.Errorf("removing %s: %w", p, explain(err))
	}
	return nil
}

// explain adds the operator's words to the two disk failures that matter.
func explain(err error) error {
	switch {
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (the disk is read-only)", err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w (the disk is full)", err)
	}
	return err
}

// Health records, per part of the node that writes to disk, its last
// write error. It is safe for concurrent use.
type Health struct {
	mu       sync.Mutex
	problems map[string]string
}

// Set records err for part; nil clears it.
func (h *Health) Set(part string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.problems, part)
		return
	}
	if h.problems == nil {
		h.problems = map[string]string{}
	}
	h.problems[part] = err.Error()
}

// Problem is one part's trouble.
type Problem struct {
	Part  string `json:"part"`
	Error string `json:"error"`
}

// Problems lists the parts with an error, by part name.
func (h *Health) Problems() []Problem {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Problem, 0, len(h.problems))
	for p, e := range h.problems {
		out = append(out, Problem{Part: p, Error: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Part < out[j].Part })
	return out
}

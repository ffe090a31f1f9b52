package wasm

import (
	"container/list"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// diskCache manages the on-disk compile cache: one directory per module
// (named by the hex of its hash), each holding the wazero compilation cache
// of that module's own runtime. wazero never deletes what it writes, so this
// keeps the directories' total size under max by removing the least
// recently compiled ones (a directory's mtime records its last use, so the
// order survives a restart).
type diskCache struct {
	root string
	max  int64
	log  *slog.Logger

	mu    sync.Mutex
	lru   *list.List // front = most recently used; values are *diskEntry
	items map[string]*diskEntry
	bytes int64

	evictions atomic.Uint64
}

type diskEntry struct {
	name string
	size int64
	busy int // compilations writing into it now: never evicted meanwhile
	elem *list.Element
}

// openDiskCache creates root if needed, refuses it unless it is trusted
// (checkTrusted), removes what is not one of its module directories, and
// evicts down to max.
func openDiskCache(root string, max int64, log *slog.Logger) (*diskCache, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: compile cache: %w", err)
	}
	if err := checkTrusted(root); err != nil {
		return nil, err
	}
	d := &diskCache{root: root, max: max, log: log, lru: list.New(), items: make(map[string]*diskEntry)}
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("wasm: compile cache: %w", err)
	}
	type found struct {
		name  string
		size  int64
		mtime time.Time
	}
	var entries []found
	for _, de := range des {
		p := filepath.Join(root, de.Name())
		if !de.IsDir() || !isModuleDirName(de.Name()) {
			// An older layout (wazero's shared directory) or a stray file:
			// nothing here reads it, and it would escape the bound.
			log.Info("removing unknown entry from the compile cache", "event", "wasm_cache_cleanup", "path", p)
			if err := os.RemoveAll(p); err != nil {
				return nil, fmt.Errorf("wasm: compile cache: removing %s: %w", p, err)
			}
			continue
		}
		size, err := dirSize(p)
		if err != nil {
			return nil, err
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted meanwhile by another executor sharing the cache
		}
		if err != nil {
			return nil, fmt.Errorf("wasm: compile cache: %w", err)
		}
		entries = append(entries, found{de.Name(), size, info.ModTime()})
	}
	slices.SortFunc(entries, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range entries { // oldest first, so the newest ends at the front
		e := &diskEntry{name: f.name, size: f.size}
		e.elem = d.lru.PushFront(e)
		d.items[f.name] = e
		d.bytes += f.size
	}
	d.mu.Lock()
	d.evictLocked()
	d.mu.Unlock()
	return d, nil
}

// isModuleDirName: 64 lowercase hex digits.
func isModuleDirName(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// begin marks hash's directory in use by a compilation and returns it,
// created.
func (d *diskCache) begin(hash string) (string, error) {
	name := strings.TrimPrefix(hash, "sha256:")
	if !isModuleDirName(name) {
		return "", fmt.Errorf("wasm: compile cache: bad module hash %q", hash)
	}
	d.mu.Lock()
	e := d.items[name]
	if e == nil {
		e = &diskEntry{name: name}
		e.elem = d.lru.PushFront(e)
		d.items[name] = e
	} else {
		d.lru.MoveToFront(e.elem)
	}
	e.busy++
	d.mu.Unlock()
	dir := filepath.Join(d.root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.end(hash)
		return "", fmt.Errorf("wasm: compile cache: %w", err)
	}
	return dir, nil
}

// end records the directory's size after a compilation wrote to it (or
// found its code there), marks it used now, and evicts beyond the bound.
// It returns the directory's size.
func (d *diskCache) end(hash string) int64 {
	name := strings.TrimPrefix(hash, "sha256:")
	dir := filepath.Join(d.root, name)
	size, err := dirSize(dir)
	if err != nil {
		d.log.Warn("compile cache: measuring a module's directory", "event", "wasm_cache_error", "error", err.Error())
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // the recency a restart reads; best effort
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.items[name]
	if e == nil {
		return size
	}
	d.bytes += size - e.size
	e.size = size
	e.busy--
	d.evictLocked()
	return size
}

// evictLocked removes least recently used directories not in use until the
// total is within max.
func (d *diskCache) evictLocked() {
	for el := d.lru.Back(); el != nil && d.bytes > d.max; {
		e := el.Value.(*diskEntry)
		prev := el.Prev()
		if e.busy == 0 {
			if err := os.RemoveAll(filepath.Join(d.root, e.name)); err != nil {
				d.log.Warn("compile cache: evicting", "event", "wasm_cache_error", "error", err.Error())
			} else {
				d.lru.Remove(el)
				delete(d.items, e.name)
				d.bytes -= e.size
				d.evictions.Add(1)
			}
		}
		el = prev
	}
}

// has reports whether hash has a directory with code in it.
func (d *diskCache) has(hash string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.items[strings.TrimPrefix(hash, "sha256:")]
	return e != nil && e.size > 0
}

func (d *diskCache) usage() (n int, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items), d.bytes
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if de.Type().IsRegular() {
			if info, err := de.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("wasm: compile cache: %w", err)
	}
	return n, nil
}

// checkTrusted refuses a compile cache that someone other than this
// process's user could have written. Its files are native code that the
// node maps executable and runs without validating it again: whoever can
// write them can run anything as the node. So root, its parent, and
// everything under root must be owned by the node's user (or root) and
// not writable by group or others. root itself may be a symbolic link (the
// simulator shares one cache between its nodes that way): then the link's
// directory and the link's target, its parent and its contents are
// checked. Symbolic links inside are refused.
func checkTrusted(root string) error {
	uid := os.Getuid()
	check := func(p string, info fs.FileInfo, sticky bool) error {
		if sticky && info.IsDir() && info.Mode()&fs.ModeSticky != 0 {
			return nil // a sticky parent (/tmp): others cannot rename or remove our entry in it
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("wasm: compile cache %s: %s is a symbolic link; refusing to load native code through it", root, p)
		}
		if perm := info.Mode().Perm(); perm&0o022 != 0 {
			return fmt.Errorf("wasm: compile cache %s: %s has mode %04o: group or others may write native code the node would run; refusing to use it (fix with: chmod -R go-w %s, or remove it)", root, p, perm, root)
		}
		if owner, ok := fileOwner(info); ok && owner != uid && owner != 0 {
			return fmt.Errorf("wasm: compile cache %s: %s is owned by uid %d, not this node's user (uid %d); refusing to run native code written by another user (remove it, or chown it)", root, p, owner, uid)
		}
		return nil
	}
	checkDir := func(p string) error {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("wasm: compile cache: %w", err)
		}
		return check(p, info, true)
	}
	clean := filepath.Clean(root)
	if err := checkDir(filepath.Dir(clean)); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(clean)
	if err != nil {
		return fmt.Errorf("wasm: compile cache: %w", err)
	}
	if real != clean {
		if err := checkDir(filepath.Dir(real)); err != nil {
			return err
		}
	}
	info, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("wasm: compile cache: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("wasm: compile cache %s is not a directory", root)
	}
	return filepath.WalkDir(real, func(p string, de fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile (another executor sharing the cache evicted it)
		}
		if err != nil {
			return fmt.Errorf("wasm: compile cache: %w", err)
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wasm: compile cache: %w", err)
		}
		return check(p, info, false)
	})
}

//go:build unix

package api

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a file another user owns: they could change it.
func checkOwner(st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(sys.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not by the node's user (uid %d)", sys.Uid, uid)
	}
	return nil
}

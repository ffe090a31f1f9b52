//go:build unix

package jobs

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used, so a
// benchmark can report cost per job independently of how busy the shared
// machine is.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

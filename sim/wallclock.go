package sim

import (
	"time"

	"golang.org/x/sys/unix"
)

// wallNow reads the machine's monotonic clock directly. Inside a synctest
// bubble time.Now is virtual; the simulator still has to measure how long
// a run really took.
func wallNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

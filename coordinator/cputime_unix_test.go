//go:build unix

package coordinator

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time this process has used, user and system: on a
// machine shared with other work it measures a one-thread benchmark's own
// work where wall time also counts the time it waited for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

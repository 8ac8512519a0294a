// Package cpuclock reads the CPU time of the running process, for benchmarks
// that report a rate per CPU-second: on a shared machine the wall-clock rate
// varies with load, the rate per CPU-second of this process is the one-core
// figure the performance targets speak of.
package cpuclock

import (
	"syscall"
	"time"
)

// Process is the user plus system CPU time of this process so far (all
// threads, so garbage collection on other cores counts too).
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

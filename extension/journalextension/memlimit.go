package journalextension

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// The Go runtime's soft memory limit (go_memory_limit_mib). Under it the
// garbage collector runs more often as the heap nears the limit, instead of
// letting the heap grow to twice the live data (GOGC=100). When the live
// data itself nears the limit, collecting more often frees little and the
// collector would spend its CPU on garbage collection (the runtime caps that
// at about half the CPU, which still halves throughput). So a guard watches
// the share of the process's CPU that went to garbage collection and raises
// the limit while it is too high, up to maxLimitFactor times the configured
// one, and lowers it back once the live data fits again: memory is bounded
// as long as the live data fits, and a larger live heap costs memory, not a
// collapse of throughput.
const (
	guardInterval  = 5 * time.Second
	gcShareHigh    = 0.25 // raise the limit when GC took more of the CPU used
	gcShareLow     = 0.10 // lower it back when GC took less, and the live heap fits
	limitStep      = 1.25
	maxLimitFactor = 4
)

// memoryLimit is the limit the journal set, and the guard that adjusts it.
type memoryLimit struct {
	configured int64
	current    int64
	prev       int64 // the runtime's limit before, restored at stop
	logger     *zap.Logger
	cancel     context.CancelFunc
	done       chan struct{}
}

// startMemoryLimit applies go_memory_limit_mib unless GOMEMLIMIT already set
// the limit (the operator's choice, e.g. from a container's limit, wins);
// nil when nothing was set.
func startMemoryLimit(mib int64, logger *zap.Logger) *memoryLimit {
	if mib <= 0 {
		return nil
	}
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		logger.Info("GOMEMLIMIT is set; the journal's go_memory_limit_mib is not applied",
			zap.String("GOMEMLIMIT", env), zap.Int64("go_memory_limit_mib", mib))
		return nil
	}
	m := &memoryLimit{configured: mib << 20, current: mib << 20, logger: logger, done: make(chan struct{})}
	m.prev = debug.SetMemoryLimit(m.current)
	logger.Info("Go runtime memory limit set", zap.Int64("go_memory_limit_mib", mib))
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go m.guard(ctx)
	return m
}

func (m *memoryLimit) stop() {
	if m == nil {
		return
	}
	m.cancel()
	<-m.done
	debug.SetMemoryLimit(m.prev)
}

// gcSamples are the runtime metrics the guard reads.
var gcSamples = []string{
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/pause:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
	"/gc/heap/live:bytes",
}

func (m *memoryLimit) guard(ctx context.Context) {
	defer close(m.done)
	s := make([]metrics.Sample, len(gcSamples))
	for i, name := range gcSamples {
		s[i].Name = name
	}
	read := func() (gc, used float64, live uint64) {
		metrics.Read(s)
		f := func(i int) float64 {
			if s[i].Value.Kind() != metrics.KindFloat64 {
				return 0
			}
			return s[i].Value.Float64()
		}
		if s[5].Value.Kind() == metrics.KindUint64 {
			live = s[5].Value.Uint64()
		}
		// Idle-time marking uses CPU nobody else wanted: not counted.
		return f(0) + f(1) + f(2), f(3) - f(4), live
	}
	gc0, used0, _ := read()
	t := time.NewTicker(guardInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gc1, used1, live := read()
		share := 0.0
		if used1 > used0 {
			share = (gc1 - gc0) / (used1 - used0)
		}
		gc0, used0 = gc1, used1
		if next := nextLimit(m.configured, m.current, share, live); next != m.current {
			m.logger.Info("Go runtime memory limit adjusted (garbage collection share of CPU)",
				zap.Int64("limit_mib", next>>20), zap.Int64("go_memory_limit_mib", m.configured>>20),
				zap.Float64("gc_cpu_share", share), zap.Uint64("live_heap_mib", live>>20))
			m.current = next
			debug.SetMemoryLimit(next)
		}
	}
}

// nextLimit is the limit after an interval in which garbage collection took
// gcShare of the CPU the process used, with live bytes of live heap.
func nextLimit(configured, current int64, gcShare float64, live uint64) int64 {
	switch {
	case gcShare > gcShareHigh && current < maxLimitFactor*configured:
		return min(int64(float64(current)*limitStep), maxLimitFactor*configured)
	case gcShare < gcShareLow && current > configured && int64(live) < configured/2:
		return max(int64(float64(current)/limitStep), configured)
	}
	return current
}

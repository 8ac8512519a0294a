package journalextension

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/extension/journalextension/internal/metadata"
	"github.com/batchaudit/batchaudit/journal"
)

func startJournal(t *testing.T, cfg *Config) *journalExt {
	t.Helper()
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	return ext.(*journalExt)
}

func testConfig(dir string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = dir
	cfg.Fsync = false
	cfg.CheckpointInterval = time.Hour // tests checkpoint explicitly (stop) unless they set it
	cfg.TickInterval = 20 * time.Millisecond
	cfg.RetryInterval = time.Millisecond
	cfg.MaxRetryInterval = 5 * time.Millisecond
	return cfg
}

func request(ids ...string) plog.Logs {
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for _, id := range ids {
		lr := lrs.AppendEmpty()
		lr.SetEventName("test.event")
		lr.Attributes().PutStr("id", id)
	}
	return ld
}

// counter stands in for a stateful processor: it counts the records it saw
// in the journal's state (read-modify-write per delivery), records the times
// it was given and forwards to a sink that may refuse.
type counter struct {
	client storage.Client
	next   consumer.Logs

	mu      sync.Mutex
	times   []time.Time
	empty   int
	resets  int
	replays int
}

func newCounter(t *testing.T, j *journalExt, next consumer.Logs) *counter {
	c, err := j.GetClient(context.Background(), component.KindProcessor, component.MustNewID("counter"), "")
	require.NoError(t, err)
	require.True(t, journal.Driven(c))
	p := &counter{client: c, next: next}
	journal.OnReset(c, func(context.Context) error {
		p.mu.Lock()
		p.resets++
		p.mu.Unlock()
		return nil
	})
	return p
}

func (p *counter) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (p *counter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	info, ok := journal.FromContext(ctx)
	if !ok {
		return errors.New("no journal info in the context")
	}
	p.mu.Lock()
	p.times = append(p.times, info.Time)
	if ld.LogRecordCount() == 0 {
		p.empty++
	}
	if info.Replay {
		p.replays++
	}
	p.mu.Unlock()
	n, err := p.count(ctx)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n+ld.LogRecordCount()))
	if err := p.client.Set(ctx, "n", b[:]); err != nil {
		return err
	}
	return p.next.ConsumeLogs(ctx, ld)
}

func (p *counter) count(ctx context.Context) (int, error) {
	v, err := p.client.Get(ctx, "n")
	if err != nil || v == nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint64(v)), nil
}

// sink is the store: it keeps each id once and can be told to refuse.
type sink struct {
	mu      sync.Mutex
	seen    map[string]int
	refuse  int // refuse this many deliveries (with data)
	refused int
}

func (s *sink) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (s *sink) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ld.LogRecordCount() > 0 && s.refuse > 0 {
		s.refuse--
		s.refused++
		return errors.New("store unavailable")
	}
	if s.seen == nil {
		s.seen = map[string]int{}
	}
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				id, _ := lr.Attributes().Get("id")
				s.seen[id.Str()]++
			}
		}
	}
	return nil
}

func (s *sink) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// deliverAsync runs Deliver until the returned stop is called.
func deliverAsync(t *testing.T, j *journalExt, next consumer.Logs) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- deliverAll(ctx, j, next) }()
	eventually(t, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.attached
	}, "the deliverer is attached")
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msg)
}

func TestDeliverCheckpointAndRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := startJournal(t, testConfig(dir))
	s := &sink{}
	p := newCounter(t, j, s)
	stop := deliverAsync(t, j, p)
	for i := range 20 {
		require.NoError(t, j.Append(ctx, request(fmt.Sprintf("a%d", 2*i), fmt.Sprintf("a%d", 2*i+1))))
	}
	eventually(t, func() bool { return s.distinct() == 40 }, "every appended record is delivered")
	stop() // a clean stop checkpoints the delivered position with the state
	n, err := p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 40, n)
	require.NoError(t, j.Shutdown(ctx))

	// Nothing is delivered twice after a clean restart; new records go on.
	j = startJournal(t, testConfig(dir))
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	s2 := &sink{}
	p = newCounter(t, j, s2)
	n, err = p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 40, n, "the counter survived the restart")
	stop = deliverAsync(t, j, p)
	require.NoError(t, j.Append(ctx, request("b0")))
	eventually(t, func() bool { return s2.distinct() == 1 }, "new records are delivered")
	stop()
	assert.Equal(t, map[string]int{"b0": 1}, s2.seen)
	n, err = p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 41, n)
}

func TestRefusedDeliveryRollsBackAndReplays(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := testConfig(dir)
	cfg.CheckpointInterval = time.Nanosecond // checkpoint after every delivery
	cfg.MaxDeliveryEvents = 4
	j := startJournal(t, cfg)
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	s := &sink{}
	p := newCounter(t, j, s)
	for i := range 10 {
		require.NoError(t, j.Append(ctx, request(fmt.Sprintf("r%d", i))))
	}
	s.refuse = 3
	stop := deliverAsync(t, j, p)
	eventually(t, func() bool { return s.distinct() == 10 }, "refused deliveries are retried until stored")
	stop()
	n, err := p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, n, "a refused delivery's state changes were rolled back: every record counted once")
	assert.Equal(t, 3, s.refused)
	assert.Equal(t, 3, p.resets, "the owner was told to reload after each rollback")
	assert.Positive(t, p.replays, "deliveries after a rollback are marked as replays")
	for id, c := range s.seen {
		assert.Equal(t, 1, c, "the sink saw %s once (refused deliveries stored nothing)", id)
	}
}

// An owner that cannot reload after a rollback would go on from stale
// state: nothing is delivered until it reloads.
func TestNoDeliveryUntilOwnersReload(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := startJournal(t, testConfig(dir))
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	s := &sink{refuse: 1}
	p := newCounter(t, j, s)
	var mu sync.Mutex
	failing, attempts := true, 0
	c2, err := j.GetClient(ctx, component.KindProcessor, component.MustNewID("reloader"), "")
	require.NoError(t, err)
	journal.OnReset(c2, func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if failing {
			return errors.New("state unreadable")
		}
		return nil
	})
	require.NoError(t, j.Append(ctx, request("x0", "x1")))
	stop := deliverAsync(t, j, p)
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts >= 5
	}, "the reload is retried")
	p.mu.Lock()
	delivered := len(p.times)
	p.mu.Unlock()
	assert.Equal(t, 1, delivered, "nothing was delivered after the refused delivery while the reload failed")
	assert.Zero(t, s.distinct())
	mu.Lock()
	failing = false
	mu.Unlock()
	eventually(t, func() bool { return s.distinct() == 2 }, "delivery goes on once every owner reloaded")
	stop()
	n, err := p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func TestCrashBetweenCheckpointsReplays(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := startJournal(t, testConfig(dir))
	s := &sink{}
	p := newCounter(t, j, s)
	stop := deliverAsync(t, j, p)
	for i := range 5 {
		require.NoError(t, j.Append(ctx, request(fmt.Sprintf("c%d", i))))
	}
	eventually(t, func() bool { return s.distinct() == 5 }, "delivered")
	stop() // checkpoint at 5
	require.NoError(t, j.Shutdown(ctx))

	// Deliver five more, then stop while a delivery fails: no final
	// checkpoint, as if the process had been killed.
	j = startJournal(t, testConfig(dir))
	p = newCounter(t, j, s)
	for i := 5; i < 10; i++ {
		require.NoError(t, j.Append(ctx, request(fmt.Sprintf("c%d", i))))
	}
	blocked := &blocking{release: make(chan struct{})}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- deliverAll(dctx, j, newCounterSharing(p, blocked)) }()
	eventually(t, func() bool { return blocked.calls() > 0 }, "delivery started")
	cancel()
	close(blocked.release)
	require.NoError(t, <-done)
	require.NoError(t, j.Shutdown(ctx))

	j = startJournal(t, testConfig(dir))
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	s2 := &sink{}
	p = newCounter(t, j, s2)
	n, err := p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, n, "state is back at the checkpoint")
	stop = deliverAsync(t, j, p)
	eventually(t, func() bool { return s2.distinct() == 5 }, "the records after the checkpoint are delivered again")
	stop()
	n, err = p.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	for i := 5; i < 10; i++ {
		assert.Equal(t, 1, s2.seen[fmt.Sprintf("c%d", i)])
	}
}

// blocking is a sink that waits for release and then refuses: a pipeline
// call interrupted by shutdown.
type blocking struct {
	mu      sync.Mutex
	n       int
	release chan struct{}
}

func (b *blocking) calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}
func (b *blocking) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (b *blocking) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if ld.LogRecordCount() == 0 {
		return nil
	}
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	<-b.release
	return ctx.Err()
}

func newCounterSharing(p *counter, next consumer.Logs) *counter {
	return &counter{client: p.client, next: next}
}

func TestTicksCarryTimeWhileIdle(t *testing.T) {
	ctx := context.Background()
	j := startJournal(t, testConfig(t.TempDir()))
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	p := newCounter(t, j, &sink{})
	stop := deliverAsync(t, j, p)
	eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.empty >= 3
	}, "idle deliveries carry time")
	stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i < len(p.times); i++ {
		assert.False(t, p.times[i].Before(p.times[i-1]), "journal time never goes backwards")
	}
	assert.True(t, p.times[len(p.times)-1].After(p.times[0]))
}

func TestFullJournalRefuses(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.MaxBacklogMiB = 1
	cfg.SegmentMiB = 1
	j := startJournal(t, cfg)
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	big := request()
	big.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty().Body().SetStr(string(make([]byte, 300<<10)))
	require.NoError(t, j.Append(ctx, big))
	require.NoError(t, j.Append(ctx, big))
	require.NoError(t, j.Append(ctx, big))
	assert.ErrorIs(t, j.Append(ctx, big), journal.ErrFull)
}

func TestMismatchedStateAndJournalAreRefused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	j := startJournal(t, testConfig(dir))
	s := &sink{}
	stop := deliverAsync(t, j, newCounter(t, j, s))
	require.NoError(t, j.Append(ctx, request("x")))
	eventually(t, func() bool { return s.distinct() == 1 }, "delivered")
	stop()
	require.NoError(t, j.Shutdown(ctx))

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "journal")))
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(metadata.Type), testConfig(dir))
	require.NoError(t, err)
	err = ext.Start(ctx, componenttest.NewNopHost())
	assert.ErrorContains(t, err, "journal directory was lost or replaced")
	require.NoError(t, ext.Shutdown(ctx))
}

func TestSecondDelivererIsRefused(t *testing.T) {
	ctx := context.Background()
	j := startJournal(t, testConfig(t.TempDir()))
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	stop := deliverAsync(t, j, &sink{})
	defer stop()
	assert.ErrorContains(t, deliverAll(ctx, j, &sink{}), "another receiver")
}

func TestDrainDeliversEverythingAppended(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.TickInterval = time.Hour // an idle deliverer must still notice the drain
	j := startJournal(t, cfg)
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	s := &sink{}
	slow := &slowSink{next: s, delay: 2 * time.Millisecond}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- deliverAll(dctx, j, newCounter(t, j, slow)) }()
	eventually(t, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.attached
	}, "the deliverer is attached")
	for i := range 200 {
		require.NoError(t, j.Append(ctx, request(fmt.Sprintf("d%d", i))))
	}
	require.NoError(t, j.Drain(ctx))
	assert.Equal(t, 200, s.distinct(), "Drain returns once everything appended before it was delivered")
	require.NoError(t, <-done, "Deliver returns after the drain")
	cancel()
	assert.Equal(t, j.log.End(), j.position(), "the drained position is checkpointed")
}

type slowSink struct {
	next  consumer.Logs
	delay time.Duration
}

func (s *slowSink) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (s *slowSink) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	time.Sleep(s.delay)
	return s.next.ConsumeLogs(ctx, ld)
}

func TestDrainTimesOutWhenTheStoreIsDown(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.DrainTimeout = 200 * time.Millisecond
	j := startJournal(t, cfg)
	defer func() { require.NoError(t, j.Shutdown(ctx)) }()
	s := &sink{refuse: 1 << 30}
	stop := deliverAsync(t, j, newCounter(t, j, s))
	require.NoError(t, j.Append(ctx, request("x")))
	err := j.Drain(ctx)
	assert.ErrorContains(t, err, "delivered after the next start")
	stop()
	assert.Zero(t, j.position(), "nothing was checkpointed past the undelivered record")
}

// deliverAll attaches next and runs the delivery loop until ctx ends or a
// drain completed.
func deliverAll(ctx context.Context, j journal.Journal, next consumer.Logs) error {
	deliver, err := j.Attach(next)
	if err != nil {
		return err
	}
	return deliver(ctx)
}

// TestMemoryLimit: go_memory_limit_mib becomes the Go runtime's soft limit
// while the journal runs and is given back at shutdown; GOMEMLIMIT in the
// environment wins over it.
func TestMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	cfg := testConfig(t.TempDir())
	cfg.GoMemoryLimitMiB = 300
	j := startJournal(t, cfg)
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
	require.NoError(t, j.Shutdown(context.Background()))
	assert.Equal(t, before, debug.SetMemoryLimit(-1), "restored at shutdown")

	t.Setenv("GOMEMLIMIT", "1GiB")
	cfg = testConfig(t.TempDir())
	cfg.GoMemoryLimitMiB = 300
	j = startJournal(t, cfg)
	assert.Equal(t, before, debug.SetMemoryLimit(-1), "the environment's limit stays")
	require.NoError(t, j.Shutdown(context.Background()))
}

// TestMemoryLimitGuard: the limit rises while garbage collection takes too
// much of the CPU (live data near the limit), at most to 4× the configured
// one, and comes back once collection is cheap and the live heap fits.
func TestMemoryLimitGuard(t *testing.T) {
	const mib = 1 << 20
	conf := int64(100 * mib)
	assert.Equal(t, conf, nextLimit(conf, conf, 0.05, 40*mib), "cheap GC: unchanged")
	assert.Equal(t, conf, nextLimit(conf, conf, 0.2, 90*mib), "GC at 20%: unchanged")
	assert.Equal(t, int64(125*mib), nextLimit(conf, conf, 0.4, 95*mib), "thrashing: raised")
	assert.Equal(t, 4*conf, nextLimit(conf, 390*mib, 0.5, 380*mib), "never above 4×")
	assert.Equal(t, 4*conf, nextLimit(conf, 4*conf, 0.5, 390*mib))
	assert.Equal(t, int64(125*mib), nextLimit(conf, int64(156.25*mib), 0.05, 30*mib), "lowered back")
	assert.Equal(t, conf, nextLimit(conf, 110*mib, 0.05, 30*mib), "never below the configured limit")
	assert.Equal(t, int64(200*mib), nextLimit(conf, 200*mib, 0.05, 70*mib), "kept while the live heap would not fit")
}

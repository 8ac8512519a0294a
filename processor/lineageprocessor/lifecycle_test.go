package lineageprocessor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
)

// closeCounting hands out the real filestorage extension's clients and
// counts how many of them were closed (a test double around the real
// extension, to observe the processor's lifecycle).
type closeCounting struct {
	component.StartFunc
	component.ShutdownFunc
	ext    storage.Extension
	closed atomic.Int32
}

type countedClient struct {
	storage.Client
	c *closeCounting
}

func (c *countedClient) Close(ctx context.Context) error {
	c.c.closed.Add(1)
	return c.Client.Close(ctx)
}

func (c *closeCounting) GetClient(ctx context.Context, kind component.Kind, id component.ID, name string) (storage.Client, error) {
	cl, err := c.ext.GetClient(ctx, kind, id, name)
	if err != nil {
		return nil, err
	}
	return &countedClient{Client: cl, c: c}, nil
}

// countingHost starts the real filestorage extension on dir behind
// closeCounting.
func countingHost(t *testing.T, dir string) (*closeCounting, testHost, func()) {
	ext, _ := startFileStorage(t, dir)
	cc := &closeCounting{ext: ext.(storage.Extension)}
	return cc, testHost{ext: map[component.ID]component.Component{storageID: cc}},
		func() { require.NoError(t, ext.Shutdown(context.Background())) }
}

// findingGate is the next consumer: it passes everything to sink, except
// that the first delivery carrying findings (a tick's) is held until
// release is closed, or, with honorCancel, until its context is done.
type findingGate struct {
	sink        *sinkLogs
	honorCancel bool
	entered     chan struct{}
	release     chan struct{}
	once        sync.Once
	blockedErr  chan error // what the held call returned
}

type sinkLogs struct {
	mu  sync.Mutex
	lds []plog.Logs
}

func (s *sinkLogs) events() []auditevent.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return events(s.lds)
}

func newGate(honorCancel bool) *findingGate {
	return &findingGate{sink: &sinkLogs{}, honorCancel: honorCancel, entered: make(chan struct{}),
		release: make(chan struct{}), blockedErr: make(chan error, 1)}
}

func (g *findingGate) consumer() consumer.Logs {
	c, _ := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		if len(named(events([]plog.Logs{ld}), auditevent.Finding)) > 0 {
			first := false
			g.once.Do(func() { first = true })
			if first {
				close(g.entered)
				var err error
				if g.honorCancel {
					<-ctx.Done()
					err = ctx.Err()
				} else {
					<-g.release
					err = context.DeadlineExceeded
				}
				g.blockedErr <- err
				return err
			}
		}
		g.sink.mu.Lock()
		defer g.sink.mu.Unlock()
		g.sink.lds = append(g.sink.lds, ld)
		return nil
	})
	return c
}

func newGatedProc(t *testing.T, cfg *Config, next consumer.Logs) processor.Logs {
	t.Helper()
	set := newSettings()
	p, err := NewFactory().CreateLogs(context.Background(), set, cfg, next)
	require.NoError(t, err)
	return p
}

// timeoutConfig expires every run at the first tick.
func timeoutConfig() *Config {
	cfg := inlineConfig()
	cfg.Storage = &storageID
	cfg.RunTimeout = time.Nanosecond
	cfg.CheckpointInterval = 10 * time.Millisecond
	return cfg
}

// TestShutdownCancelsTheTimersDelivery: the timer delivers its findings
// under a context Shutdown cancels, so a next consumer that waits (a full
// queue) returns at shutdown instead of holding it; the findings are then
// delivered by Shutdown itself, and the storage client is closed.
func TestShutdownCancelsTheTimersDelivery(t *testing.T) {
	cc, host, stopExt := countingHost(t, t.TempDir())
	defer stopExt()
	gate := newGate(true)
	p := newGatedProc(t, timeoutConfig(), gate.consumer())
	require.NoError(t, p.Start(context.Background(), host))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(runEvents("stuck", 2)[:3])))
	select {
	case <-gate.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the timer never delivered the timeout findings")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, p.Shutdown(ctx))
	assert.Less(t, time.Since(began), 5*time.Second, "Shutdown did not wait for the deadline")
	assert.ErrorIs(t, <-gate.blockedErr, context.Canceled, "the timer's delivery saw the cancellation")
	var types []string
	for _, f := range named(gate.sink.events(), auditevent.Finding) {
		types = append(types, f.FindingType)
	}
	assert.ElementsMatch(t, []string{auditevent.FindingDataLoss, auditevent.FindingRunTimeout}, types,
		"the findings the timer could not deliver are delivered at shutdown")
	assert.Equal(t, int32(1), cc.closed.Load(), "storage client closed")
}

// TestShutdownSavesStateWhenTheTimerIsStuck: a next consumer that ignores
// cancellation keeps the timer's delivery past the shutdown deadline.
// Shutdown then reports it, but still saves the state and closes the
// storage client; the findings held in that delivery were saved before it,
// so the next start delivers them.
func TestShutdownSavesStateWhenTheTimerIsStuck(t *testing.T) {
	dir := t.TempDir()
	cc, host, stopExt := countingHost(t, dir)
	gate := newGate(false)
	p := newGatedProc(t, timeoutConfig(), gate.consumer())
	require.NoError(t, p.Start(context.Background(), host))
	require.NoError(t, p.ConsumeLogs(context.Background(), toLogs(runEvents("stuck", 2)[:3])))
	<-gate.entered

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := p.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "settle timer")
	assert.Equal(t, int32(1), cc.closed.Load(), "storage client closed despite the deadline")
	close(gate.release) // the stuck consumer returns at last (its error keeps the events pending)
	<-gate.blockedErr
	stopExt()

	// The next start delivers what the stuck delivery held.
	cfg := timeoutConfig()
	cfg.RunTimeout = time.Hour
	_, host2, stopExt2 := countingHost(t, dir)
	defer stopExt2()
	sink := &sinkLogs{}
	next, _ := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		sink.lds = append(sink.lds, ld)
		return nil
	})
	p2 := newGatedProc(t, cfg, next)
	require.NoError(t, p2.Start(context.Background(), host2))
	require.Eventually(t, func() bool { return len(named(sink.events(), auditevent.Finding)) == 2 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p2.Shutdown(context.Background()))
}

// TestStartFailsOnUnreadableState: state that cannot be read or decoded
// stops the start with an error naming the storage, and is left as it was
// (nothing pending is deleted), instead of a start on empty state that
// drops the runs and findings.
func TestStartFailsOnUnreadableState(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		value     []byte
		want      string
	}{
		{"index", "index", []byte("{not json"), "lineage state index"},
		{"run summary missing", "index", []byte(`{"active":["b-1"]}`), "run b-1"},
		{"pending events", pendingKey, []byte("\xff\xff not protobuf"), "undelivered derived events do not decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, host, stopExt := countingHost(t, t.TempDir())
			defer stopExt()
			owner := newSettings().ID
			cl, err := cc.ext.GetClient(context.Background(), component.KindProcessor, owner, "")
			require.NoError(t, err)
			require.NoError(t, cl.Set(context.Background(), tc.key, tc.value))
			require.NoError(t, cl.Close(context.Background()))

			p := newGatedProc(t, timeoutConfig(), newGate(true).consumer())
			err = p.Start(context.Background(), host)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "cannot restore the state kept in file_storage/lineage")
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, int32(1), cc.closed.Load(), "the client of the failed start is closed")
			require.NoError(t, p.Shutdown(context.Background()), "Shutdown after a failed Start")

			cl, err = cc.ext.GetClient(context.Background(), component.KindProcessor, owner, "")
			require.NoError(t, err)
			got, err := cl.Get(context.Background(), tc.key)
			require.NoError(t, err)
			assert.Equal(t, tc.value, got, "the state is kept for repair")
			require.NoError(t, cl.Close(context.Background()))
		})
	}
}

func newSettings() processor.Settings {
	set := processortest.NewNopSettings(metadata.Type)
	set.ID = component.NewID(metadata.Type)
	return set
}

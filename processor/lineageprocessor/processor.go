package lineageprocessor // import "github.com/batchaudit/batchaudit/processor/lineageprocessor"

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/tracker"
)

// pendingKey holds derived events (timeout findings) that could not be
// delivered before shutdown.
const pendingKey = "pending"

type lineageProcessor struct {
	cfg    *Config
	set    processor.Settings
	next   consumer.Logs
	tb     *metadata.TelemetryBuilder
	logger *zap.Logger

	mu      sync.Mutex
	tr      *tracker.Tracker
	client  storage.Client
	pending plog.Logs // derived events not yet delivered downstream
	in      tracker.Input
	scratch []auditevent.Event

	// now is the clock of the tracker's time decisions (tests replace it).
	now func() time.Time

	// The timer loop (not when driven) runs under a context Shutdown
	// cancels, so a delivery blocked downstream returns at shutdown.
	stopLoop context.CancelFunc
	done     chan struct{}

	// driven: the state lives in a journal, which supplies the time of each
	// delivery (clock) and drives expiry and settling through deliveries, so
	// a replay after a rollback or crash decides exactly as the first
	// delivery did.
	driven bool
	clock  time.Time

	// A Kafka journal delivers several partitions, each with its own
	// state (its storage keys are namespaced by the delivery's partition):
	// p.tr, p.pending and p.clock are the current partition's, parts holds
	// the others'. Without a Kafka journal everything is partition 0.
	current int32
	parts   map[int32]*partState
}

// partState is the lineage state of a partition that is not current.
type partState struct {
	tr      *tracker.Tracker
	pending plog.Logs
	clock   time.Time
}

func newLineageProcessor(set processor.Settings, cfg *Config, next consumer.Logs) (*lineageProcessor, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &lineageProcessor{cfg: cfg, set: set, next: next, tb: tb, logger: set.Logger, pending: plog.NewLogs(), now: time.Now,
		parts: map[int32]*partState{}}
	p.tr = tracker.New(p.trackerConfig(nil))
	return p, nil
}

func (p *lineageProcessor) trackerConfig(store tracker.Store) tracker.Config {
	ctx := context.Background()
	add := func(c metric.Int64Counter, opts ...metric.AddOption) func(int64) {
		return func(n int64) { c.Add(ctx, n, opts...) }
	}
	return tracker.Config{
		RunTimeout:          p.cfg.RunTimeout,
		SettleTime:          p.cfg.SettleTime,
		Now:                 p.trackerNow,
		MaxResidentLineages: p.cfg.MaxActiveLineages,
		MemoryLimitBytes:    int64(p.cfg.MemoryLimitMiB) << 20,
		MaxFindingIDs:       p.cfg.MaxFindingRecordIDs,
		SettledRetention:    p.cfg.SettledRunRetention,
		Store:               store,
		Hooks: tracker.Hooks{
			Completed: add(p.tb.ProcessorLineageCompleted),
			Finding: func(typ string) {
				p.tb.ProcessorLineageFindings.Add(ctx, 1, metric.WithAttributes(attribute.String("finding_type", typ)))
			},
			Spilled:  add(p.tb.ProcessorLineageSpilled),
			Evicted:  add(p.tb.ProcessorLineageEvicted),
			Reloaded: add(p.tb.ProcessorLineageReloaded),
			StorageError: func(op string, err error) {
				p.tb.ProcessorLineageStorageErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("operation", op)))
				p.logger.Warn("Lineage state storage failed; chains stay in memory or are marked truncated", zap.String("operation", op), zap.Error(err))
			},
			Late: func() {
				p.tb.ProcessorLineageUntrackedEvents.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "late")))
			},
			Duplicate: func() {
				p.tb.ProcessorLineageUntrackedEvents.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "duplicate")))
			},
		},
	}
}

func (p *lineageProcessor) start(ctx context.Context, host component.Host) error {
	if p.cfg.Storage != nil {
		client, err := storageClient(ctx, host, *p.cfg.Storage, p.set.ID)
		if err != nil {
			return err
		}
		tr, pending, err := p.restore(ctx, client)
		if err != nil {
			// Starting without the state would drop the runs in flight and
			// the derived events (findings) not yet delivered, silently.
			return errors.Join(fmt.Errorf("lineage: cannot restore the state kept in %s: %w; "+
				"the processor does not start rather than lose the runs and findings it holds "+
				"(repair or restore the storage; removing it discards them)", p.cfg.Storage, err), client.Close(ctx))
		}
		p.mu.Lock()
		p.client, p.tr, p.pending = client, tr, pending
		if p.driven = journal.Driven(client); p.driven {
			journal.OnReset(client, p.reload)
		}
		p.mu.Unlock()
	}
	if p.driven {
		return nil
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	p.stopLoop, p.done = cancel, make(chan struct{})
	go p.loop(loopCtx)
	return nil
}

// restore reads the tracked runs and the derived events not yet delivered
// (pendingKey) from client. Derived events not delivered before a stop (or
// a crash) are delivered by the first tick (when driven: the first
// delivery); the key goes once they are.
func (p *lineageProcessor) restore(ctx context.Context, client storage.Client) (*tracker.Tracker, plog.Logs, error) {
	tr := tracker.New(p.trackerConfig(client))
	pending := plog.NewLogs()
	if err := tr.Load(ctx); err != nil {
		return tr, pending, err
	}
	data, err := client.Get(ctx, pendingKey)
	if err != nil {
		return tr, pending, fmt.Errorf("undelivered derived events: %w", err)
	}
	if data != nil {
		ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(data)
		if err != nil {
			return tr, pending, fmt.Errorf("undelivered derived events do not decode: %w", err)
		}
		ld.ResourceLogs().MoveAndAppendTo(pending.ResourceLogs())
	}
	return tr, pending, nil
}

// trackerNow is the tracker's clock: the journal delivery's time when driven.
func (p *lineageProcessor) trackerNow() time.Time {
	if p.driven && !p.clock.IsZero() {
		return p.clock
	}
	return p.now()
}

// reload drops the tracked state and loads it again from storage: the
// journal rolled the state back to its last checkpoint. The state in memory
// is ahead of storage then, so it is replaced even when the load fails (the
// error goes to the journal).
func (p *lineageProcessor) reload(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Other partitions load again at their next delivery.
	clear(p.parts)
	p.current = 0
	var err error
	p.tr, p.pending, err = p.restore(ctx, p.client)
	return err
}

// use makes partition part current, loading its state from storage at its
// first delivery (since the start or the last reset).
func (p *lineageProcessor) use(ctx context.Context, part int32) error {
	if part == p.current {
		return nil
	}
	ps := p.parts[part]
	if ps == nil {
		tr, pending, err := p.restore(ctx, p.client)
		if err != nil {
			return fmt.Errorf("lineage: cannot load the state of partition %d: %w", part, err)
		}
		ps = &partState{tr: tr, pending: pending}
	}
	p.parts[p.current] = &partState{tr: p.tr, pending: p.pending, clock: p.clock}
	delete(p.parts, part)
	p.tr, p.pending, p.clock, p.current = ps.tr, ps.pending, ps.clock, part
	return nil
}

func storageClient(ctx context.Context, host component.Host, id, owner component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("storage extension %q not found", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("extension %q is not a storage extension", id)
	}
	return se.GetClient(ctx, component.KindProcessor, owner, "")
}

// loop settles ended runs, expires abandoned ones and delivers their
// derived events, every checkpoint_interval or half the settle_time,
// whichever is shorter. The tracker takes the time from its clock, not from
// the ticker.
func (p *lineageProcessor) loop(ctx context.Context) {
	defer close(p.done)
	every := p.cfg.CheckpointInterval
	if s := max(p.cfg.SettleTime/2, 10*time.Millisecond); p.cfg.SettleTime > 0 && s < every {
		every = s
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.tick(ctx)
		}
	}
}

func (p *lineageProcessor) tick(ctx context.Context) {
	p.mu.Lock()
	evs := p.tr.Expire(ctx)
	evs = append(evs, p.tr.Settle(ctx)...)
	if len(evs) > 0 {
		appendEvents(p.pending, evs)
		// The settled runs' state is deleted in the same storage batch as
		// their derived events are saved: a crash before delivery loses
		// neither (they are delivered after the restart, same ids).
		p.stagePending()
	}
	// A failed checkpoint keeps its writes queued for the next one (and
	// the final one at shutdown); the hook counted and logged it.
	_ = p.tr.Checkpoint(ctx)
	p.recordGauges(ctx)
	ld := p.takePending()
	p.mu.Unlock()
	if ld.LogRecordCount() == 0 {
		return
	}
	if err := p.next.ConsumeLogs(ctx, ld); err != nil {
		p.logger.Warn("Could not deliver settled-run events; retrying", zap.Error(err))
		p.mu.Lock()
		ld.ResourceLogs().MoveAndAppendTo(p.pending.ResourceLogs())
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	if p.pending.LogRecordCount() == 0 {
		p.tr.Stage(pendingKey, nil) // delivered: removed with the next checkpoint
	} else {
		p.stagePending()
	}
	p.mu.Unlock()
}

// stagePending queues the undelivered derived events for the next
// checkpoint.
func (p *lineageProcessor) stagePending() {
	if p.client == nil {
		return
	}
	if data, err := (&plog.ProtoMarshaler{}).MarshalLogs(p.pending); err == nil {
		p.tr.Stage(pendingKey, data)
	}
}

func (p *lineageProcessor) takePending() plog.Logs {
	ld := p.pending
	p.pending = plog.NewLogs()
	return ld
}

func (p *lineageProcessor) processLogs(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.scratch[:0]
	if p.driven {
		if err := p.use(ctx, journal.PartitionOf(ctx)); err != nil {
			return ld, err
		}
		// Expiry and settling run in every delivery, on journal time (an
		// idle journal delivers empty batches to carry the time forward):
		// what expires or settles then depends only on the journal, so a
		// replay decides the same.
		p.clock = journal.Now(ctx, p.now)
		out = append(out, p.tr.Expire(ctx)...)
		out = append(out, p.tr.Settle(ctx)...)
	}
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				if !tracked[lr.EventName()] {
					continue
				}
				extract(lr, rl.Resource(), &p.in)
				if p.in.BatchID == "" {
					p.tb.ProcessorLineageUntrackedEvents.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", "no_batch_id")))
					continue
				}
				out = p.tr.Handle(ctx, &p.in, out)
			}
		}
	}
	defer func() {
		clear(out)
		p.scratch = out[:0]
		p.recordGauges(ctx)
	}()
	// The state changes of this request are durable before it is
	// forwarded and acknowledged: a crash after this point loses nothing the
	// client will not resend. On failure the request is refused (retryable);
	// its redelivery is deduplicated by event id and re-emits its chains.
	if p.driven && p.pending.LogRecordCount() > 0 {
		// Left over from before the journal drove this state: they travel
		// with this delivery, and the key goes with its checkpoint.
		p.takePending().ResourceLogs().MoveAndAppendTo(rls)
		p.tr.Stage(pendingKey, nil)
	}
	if err := p.tr.Checkpoint(ctx); err != nil {
		return ld, fmt.Errorf("lineage state could not be persisted: %w", err)
	}
	if len(out) > 0 {
		appendEvents(ld, out)
	}
	return ld, nil
}

// partitionContext addresses partition part's storage keys outside a
// delivery.
func partitionContext(ctx context.Context, part int32) context.Context {
	if part == 0 {
		return ctx
	}
	return journal.NewContext(ctx, journal.Info{Partition: part})
}

// appendEvents adds derived events to ld under the processor's scope.
func appendEvents(ld plog.Logs, evs []auditevent.Event) {
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	lrs := sl.LogRecords()
	lrs.EnsureCapacity(len(evs))
	for i := range evs {
		evs[i].ToLogRecord(lrs.AppendEmpty())
	}
}

func (p *lineageProcessor) recordGauges(ctx context.Context) {
	lineages, runs, resident := p.tr.ActiveLineages(), int64(p.tr.ActiveRuns()), p.tr.ResidentBytes()
	for _, ps := range p.parts {
		lineages, runs, resident = lineages+ps.tr.ActiveLineages(), runs+int64(ps.tr.ActiveRuns()), resident+ps.tr.ResidentBytes()
	}
	p.tb.ProcessorLineageActiveLineages.Record(ctx, lineages)
	p.tb.ProcessorLineageActiveRuns.Record(ctx, runs)
	p.tb.ProcessorLineageResidentBytes.Record(ctx, resident)
}

// shutdown stops the loop, delivers or saves pending derived events, persists
// the state of active runs and closes the storage client. The loop's
// context is cancelled, so a tick blocked on the next consumer returns; if
// one still has not when ctx expires (a consumer that ignores
// cancellation), the state is saved and the client closed all the same,
// and the error says so. The events of that tick stay saved under
// pendingKey until a tick delivered them, so they are delivered again
// after the next start.
func (p *lineageProcessor) shutdown(ctx context.Context) error {
	var errs []error
	if p.stopLoop != nil {
		p.stopLoop()
		select {
		case <-p.done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("lineage: the settle timer's delivery did not return before the shutdown deadline: %w", ctx.Err()))
		}
		p.stopLoop = nil
	}
	// Storage writes are local and short: the final save runs even when
	// ctx expired waiting for the loop, rather than lose the state.
	saveCtx := context.WithoutCancel(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		// Without a store the runs' state is lost at shutdown: settle the
		// ended ones now rather than lose their findings.
		if evs := p.tr.SettleEnded(ctx); len(evs) > 0 {
			appendEvents(p.pending, evs)
		}
	}
	if ld := p.takePending(); ld.LogRecordCount() > 0 {
		if err := p.next.ConsumeLogs(ctx, ld); err != nil {
			if p.client == nil {
				errs = append(errs, fmt.Errorf("%d derived lineage events could not be delivered: %w", ld.LogRecordCount(), err))
			} else {
				// Saved with the state by the checkpoint below and
				// delivered after the restart.
				ld.ResourceLogs().MoveAndAppendTo(p.pending.ResourceLogs())
				p.stagePending()
			}
		} else {
			p.tr.Stage(pendingKey, nil)
		}
	}
	if p.client != nil {
		errs = append(errs, p.tr.Checkpoint(partitionContext(saveCtx, p.current)))
		for part, ps := range p.parts {
			errs = append(errs, ps.tr.Checkpoint(partitionContext(saveCtx, part)))
		}
		errs = append(errs, p.client.Close(saveCtx))
		p.client = nil
	}
	p.tb.Shutdown()
	return errors.Join(errs...)
}

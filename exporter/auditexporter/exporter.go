package auditexporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/exporter/auditexporter/internal/metadata"
	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/store"
)

// storeOpener opens the configured backend; tests inject fakes through it.
type storeOpener func(ctx context.Context, cfg *Config, logger *zap.Logger) (store.Store, error)

type auditExporter struct {
	cfg       *Config
	logger    *zap.Logger
	telemetry *metadata.TelemetryBuilder
	open      storeOpener
	// outcomeAttrs holds the metric attribute option of each outcome, built
	// once because push runs for every batch.
	outcomeAttrs [store.Retry + 1]metric.AddOption

	mu    sync.RWMutex
	store store.Store
	// cp signs checkpoints; nil without checkpoints::key_files. With
	// stream_per_partition it is the template of the streams' checkpointers
	// (cps), which sign in the delivery path, while the partition is here.
	cp    *checkpointer
	cpsMu sync.Mutex
	cps   map[string]*checkpointer
}

var errNotStarted = errors.New("audit exporter: the store is not open (exporter not started or already shut down)")

func newExporter(cfg *Config, set exporter.Settings, open storeOpener) (*auditExporter, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	e := &auditExporter{cfg: cfg, logger: set.Logger, telemetry: tb, open: open}
	for o := store.Stored; o <= store.Retry; o++ {
		e.outcomeAttrs[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o.String())))
	}
	return e, nil
}

func (e *auditExporter) start(ctx context.Context, _ component.Host) error {
	if e.cfg.Checkpoints.enabled() {
		// An unreadable signer key, or one others can read, refuses the start.
		cp, err := newCheckpointer(e.cfg.Checkpoints, e.cfg.Stream, e.logger, &checkpointTelemetry{
			failures: func(ctx context.Context, step string) {
				e.telemetry.ExporterAuditCheckpointFailures.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("step", step))))
			},
			alarm: func(ctx context.Context) { e.telemetry.ExporterAuditIntegrityAlarms.Add(ctx, 1) },
		})
		if err != nil {
			return fmt.Errorf("audit exporter: checkpoints: %w", err)
		}
		e.cp, e.cps = cp, map[string]*checkpointer{}
		if err := e.telemetry.RegisterExporterAuditCheckpointAgeCallback(func(_ context.Context, o metric.Float64Observer) error {
			age, _ := e.checkpointState()
			o.Observe(age.Seconds())
			return nil
		}); err != nil {
			return err
		}
		if err := e.telemetry.RegisterExporterAuditTreeSizeCallback(func(_ context.Context, o metric.Int64Observer) error {
			_, size := e.checkpointState()
			o.Observe(size)
			return nil
		}); err != nil {
			return err
		}
	}
	s, err := e.open(ctx, e.cfg, e.logger)
	if err != nil {
		return fmt.Errorf("audit exporter: open the %s backend: %w", e.cfg.backendName(), err)
	}
	e.mu.Lock()
	e.store = s
	e.mu.Unlock()
	if e.cfg.StreamPerPartition {
		e.logger.Info("Audit store open; each journal partition is written to its own stream", zap.String("backend", e.cfg.backendName()),
			zap.String("streams", e.cfg.Stream+"-p<partition>"))
		return nil
	}
	if e.cp != nil {
		e.cp.start(s)
	}
	// The last sequence is informational here (backends load it on the first
	// write); a store that is down must not keep the collector from starting
	// and queueing.
	seqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	last, err := s.LastSequence(seqCtx, e.cfg.Stream)
	if err != nil {
		if consumererror.IsPermanent(err) {
			_ = e.shutdown(ctx)
			return fmt.Errorf("audit exporter: read the last sequence of stream %q: %w", e.cfg.Stream, err)
		}
		e.logger.Warn("Audit store not reachable yet; events are queued until it is", zap.String("backend", e.cfg.backendName()),
			zap.String("stream", e.cfg.Stream), zap.Error(err))
		return nil
	}
	e.logger.Info("Audit store open", zap.String("backend", e.cfg.backendName()),
		zap.String("stream", e.cfg.Stream), zap.Int64("last_sequence", last))
	return nil
}

// shutdown runs after exporterhelper has drained the queue, so closing the
// store here loses nothing. It is safe without start and when called twice.
func (e *auditExporter) shutdown(ctx context.Context) error {
	e.mu.Lock()
	s := e.store
	e.store = nil
	e.mu.Unlock()
	e.telemetry.Shutdown()
	if s == nil {
		return nil
	}
	var err error
	if e.cp != nil && !e.cfg.StreamPerPartition {
		// The final checkpoint covers everything stored: a verifier can then
		// tell that nothing may follow it until the next start. (A
		// partition's stream goes on at the partition's next owner: no
		// final checkpoint there.)
		if err = e.cp.shutdown(ctx, s); err != nil {
			err = fmt.Errorf("audit exporter: final checkpoint: %w", err)
		}
	}
	return errors.Join(err, s.Close())
}

// push converts, hashes and writes one batch. It returns nil only when every
// record is stored, a duplicate of a stored one, or kept as a dead letter.
func (e *auditExporter) push(ctx context.Context, ld plog.Logs) error {
	stream, claimed := e.cfg.Stream, false
	if e.cfg.StreamPerPartition {
		info, ok := journal.FromContext(ctx)
		if !ok {
			return consumererror.NewPermanent(errors.New("audit exporter: stream_per_partition needs the events to come from a journal delivery (a journal receiver); these do not"))
		}
		stream, claimed = partitionStream(e.cfg.Stream, info.Partition), info.Claimed
	}
	events := convert(ld)
	if len(events) == 0 && !e.cfg.StreamPerPartition {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.store == nil {
		if len(events) == 0 {
			return nil
		}
		return errNotStarted
	}
	if claimed {
		// The partition was someone else's since this collector last
		// wrote its stream: read its numbering and recent keys again.
		if r, ok := e.store.(store.Reloader); ok {
			r.Reload(stream)
		}
	}
	if len(events) == 0 {
		// An empty delivery (time passing in an idle partition) is when a
		// due checkpoint of its stream is signed.
		e.signDue(ctx, stream, 0)
		return nil
	}
	began := time.Now()
	results, err := e.store.Write(ctx, stream, events)
	e.telemetry.ExporterAuditWriteDuration.Record(ctx, time.Since(began).Seconds())
	if err != nil {
		if consumererror.IsPermanent(err) {
			return fmt.Errorf("audit store refused %d events: %w", len(events), err)
		}
		// No outcome is known: the whole batch comes back; whatever was
		// stored then reads as Duplicate.
		return fmt.Errorf("audit store write of %d events failed, retrying: %w", len(events), err)
	}
	if len(results) != len(events) {
		// A backend bug; retrying would loop on it forever.
		return consumererror.NewPermanent(fmt.Errorf("audit store returned %d results for %d events", len(results), len(events)))
	}
	return e.account(ctx, stream, events, results)
}

// partitionStream is the stream of a journal partition.
func partitionStream(stream string, partition int32) string {
	return fmt.Sprintf("%s-p%d", stream, partition)
}

// account counts and logs the outcomes and asks for redelivery when any
// event must be retried.
func (e *auditExporter) account(ctx context.Context, stream string, events []store.StoredEvent, results []store.Result) error {
	var counts [store.Retry + 1]int64
	var firstRetry *store.Result
	for i := range results {
		r := &results[i]
		if r.Outcome < store.Stored || r.Outcome > store.Retry {
			return consumererror.NewPermanent(fmt.Errorf("audit store returned unknown outcome %d for event %s", r.Outcome, r.EventID))
		}
		counts[r.Outcome]++
		switch r.Outcome {
		case store.Conflict:
			e.telemetry.ExporterAuditIntegrityAlarms.Add(ctx, 1)
			e.logger.Error("Integrity alarm: an event id is already stored with different content; the new event is kept as a dead letter",
				zap.String("event_id", r.EventID), zap.String("stored_hash", r.ExistingHash),
				zap.String("received_hash", events[i].Hash), zap.Int64("sequence", r.Sequence),
				zap.String("stream", stream), zap.String("reason", r.Reason))
		case store.DeadLettered:
			e.logger.Warn("Audit event kept as a dead letter", zap.String("event_id", r.EventID),
				zap.String("event_name", events[i].Name), zap.Int64("sequence", r.Sequence), zap.String("reason", r.Reason))
		case store.Retry:
			if firstRetry == nil {
				firstRetry = r
			}
		}
	}
	for o, n := range counts {
		if n > 0 {
			e.telemetry.ExporterAuditEvents.Add(ctx, n, e.outcomeAttrs[o])
		}
	}
	if n := counts[store.Stored] + counts[store.DeadLettered] + counts[store.Conflict]; e.cfg.StreamPerPartition {
		e.signDue(ctx, stream, n)
	} else if e.cp != nil {
		e.cp.stored(ctx, e.store, n)
	}
	if firstRetry != nil {
		return fmt.Errorf("%d of %d audit events must be retried (first: event %s: %s)",
			counts[store.Retry], len(results), firstRetry.EventID, firstRetry.Reason)
	}
	return nil
}

// convert turns every log record into a hashed event for the store. Records
// that fail validation are not dropped: they go to the dead letters with the
// validation error as the reason.
func convert(ld plog.Logs) []store.StoredEvent {
	events := make([]store.StoredEvent, 0, ld.LogRecordCount())
	for _, rl := range ld.ResourceLogs().All() {
		res := rl.Resource()
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				events = append(events, newStoredEvent(auditevent.FromLogRecord(lr, res)))
			}
		}
	}
	return events
}

func newStoredEvent(ev auditevent.Event) store.StoredEvent {
	se := store.StoredEvent{Event: ev}
	doc, err := ev.AppendCanonical(nil)
	if err == nil {
		se.Document, se.Hash = doc, canonical.HashBytes(doc)
	}
	switch verr := ev.Validate(); {
	case verr != nil:
		se.DeadLetterReason = verr.Error()
	case err != nil:
		se.DeadLetterReason = "event cannot be hashed: " + err.Error()
	}
	return se
}

// signDue counts n entries stored in a partition's stream and signs its
// checkpoint when checkpoints::interval passed since its last one or
// max_events entries wait. Only deliveries of the partition call it, so a
// stream is signed by the collector that owns the partition, right after
// writing it.
func (e *auditExporter) signDue(ctx context.Context, stream string, n int64) {
	if e.cp == nil {
		return
	}
	e.cpsMu.Lock()
	cp := e.cps[stream]
	if cp == nil {
		cp = e.cp.forStream(stream)
		e.cps[stream] = cp
	}
	e.cpsMu.Unlock()
	if cp.due(n) {
		_ = cp.sign(ctx, e.store, false)
	}
}

// checkpointState is the age of the oldest latest checkpoint and the size
// covered, over the streams (one, or one per partition).
func (e *auditExporter) checkpointState() (time.Duration, int64) {
	if !e.cfg.StreamPerPartition {
		return e.cp.age()
	}
	e.cpsMu.Lock()
	defer e.cpsMu.Unlock()
	var oldest time.Duration
	var size int64
	for _, cp := range e.cps {
		age, n := cp.age()
		oldest, size = max(oldest, age), size+n
	}
	return oldest, size
}

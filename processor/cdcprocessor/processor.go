package cdcprocessor

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
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// derivedBy marks events this processor creates (batchaudit.derived_by).
const derivedBy = "cdcprocessor"

type cdcProcessor struct {
	cfg     *Config
	set     processor.Settings
	next    consumer.Logs
	tel     *metadata.TelemetryBuilder
	match   *matcher
	sources bool // some dataset has role source
	now     func() time.Time

	encoders sync.Pool // *recordEnc, one per concurrent collect
	bufs     sync.Pool // *batchBuf, one per concurrent ConsumeLogs

	mu     sync.Mutex // serializes state access: classification is read-modify-write
	client storage.Client
	// st is the state of the partition being delivered. A Kafka journal
	// delivers several partitions, each with its own state (its storage
	// keys are namespaced by the delivery's partition): others holds the
	// other partitions' stores. Without a Kafka journal everything is
	// partition 0.
	st        *state.Store
	current   int32
	others    map[int32]*state.Store
	names     state.Interner // field names and partitions of decoded records
	fieldHash *fieldHasher   // per-field hashes (classify)
}

func newProcessor(set processor.Settings, cfg *Config, next consumer.Logs) (*cdcProcessor, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &cdcProcessor{cfg: cfg, set: set, next: next, tel: tel, match: newMatcher(cfg), now: time.Now}
	p.sources = p.match.hasRole(RoleSource)
	key := []byte(cfg.FieldHashKey)
	if len(key) == 0 {
		key = nil
	}
	p.encoders.New = func() any { return &recordEnc{} }
	p.bufs.New = func() any { return &batchBuf{index: map[string]int32{}} }
	p.fieldHash = newFieldHasher(key)
	return p, nil
}

func (p *cdcProcessor) start(ctx context.Context, host component.Host) error {
	var client storage.Client
	if p.cfg.Storage == nil {
		p.set.Logger.Warn("cdc: no storage extension configured; the change state is kept in memory and lost on restart, " +
			"so the first run after a restart classifies every record as insert. Set storage: file_storage/<name> for durable state.")
		client = state.NewMemoryClient()
	} else {
		ext, ok := host.GetExtensions()[*p.cfg.Storage]
		if !ok {
			return fmt.Errorf("cdc: storage extension %q not found (add it under extensions and service.extensions)", p.cfg.Storage)
		}
		se, ok := ext.(storage.Extension)
		if !ok {
			return fmt.Errorf("cdc: extension %q is not a storage extension", p.cfg.Storage)
		}
		var err error
		if client, err = se.GetClient(ctx, component.KindProcessor, p.set.ID, ""); err != nil {
			return fmt.Errorf("cdc: storage client: %w", err)
		}
	}
	st, err := state.Open(ctx, client, p.observeLatency)
	if err != nil {
		_ = client.Close(ctx)
		return err
	}
	p.mu.Lock()
	p.client, p.st, p.current, p.others = client, st, 0, map[int32]*state.Store{}
	if !journal.Driven(client) {
		// Under a journal, runs expire at batch ends on journal time only,
		// so that a replay changes the state exactly as the first delivery.
		p.st.ExpireRuns(p.now().Add(-p.cfg.RunTTL))
		err = p.st.Flush(ctx)
	}
	p.mu.Unlock()
	if err != nil {
		_ = client.Close(ctx)
		return err
	}
	journal.OnReset(client, p.reload)
	if p.cfg.NoChange != NoChangeKeep {
		p.set.Logger.Info("cdc: no_change events are not exported; they are counted on the batch end event",
			zap.String("no_change", p.cfg.NoChange))
	}
	return p.tel.RegisterProcessorCdcStateKeysCallback(func(_ context.Context, o metric.Int64Observer) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.st == nil {
			return nil
		}
		live, tombs := p.st.Keys()
		for _, st := range p.others {
			l, t := st.Keys()
			live, tombs = live+l, tombs+t
		}
		o.Observe(int64(live), metric.WithAttributes(attribute.String("state", "live")))
		o.Observe(int64(tombs), metric.WithAttributes(attribute.String("state", "deleted")))
		return nil
	})
}

// reload replaces the cached state by what storage holds: the journal rolled
// it back to its last checkpoint.
func (p *cdcProcessor) reload(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return nil
	}
	// Other partitions load again at their next delivery.
	clear(p.others)
	p.current = 0
	st, err := state.Open(ctx, p.client, p.observeLatency)
	if err != nil {
		return err
	}
	p.st = st
	return nil
}

// use makes partition part's state current, loading it from storage at its
// first delivery (since the start or the last reset).
func (p *cdcProcessor) use(ctx context.Context, part int32) error {
	if part == p.current && p.st != nil {
		return nil
	}
	st := p.others[part]
	if st == nil {
		var err error
		if st, err = state.Open(ctx, p.client, p.observeLatency); err != nil {
			return fmt.Errorf("cdc: cannot load the state of partition %d: %w", part, err)
		}
	}
	if p.st != nil {
		p.others[p.current] = p.st
	}
	delete(p.others, part)
	p.st, p.current = st, part
	return nil
}

// clock is the time of state changes: the journal's delivery time when the
// events come from a journal, so a replay decides identically.
func (p *cdcProcessor) clock(ctx context.Context) time.Time { return journal.Now(ctx, p.now) }

func (p *cdcProcessor) shutdown(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	if p.client != nil {
		// Every ConsumeLogs commits before it returns, so nothing is pending.
		err = p.client.Close(ctx)
		p.client, p.st, p.others = nil, nil, nil
	}
	p.tel.Shutdown()
	return err
}

func (p *cdcProcessor) observeLatency(op string, d time.Duration) {
	p.tel.ProcessorCdcStateLatency.Record(context.Background(), d.Seconds(),
		metric.WithAttributes(attribute.String("op", op)))
}

var errNotStarted = errors.New("cdc: processor not started")

// processLogs classifies the events of ld and returns ld with the derived
// deletes appended (processorhelper forwards it and counts the items in and
// out). Only the deletes of a snapshot scan that exceed max_scan_batch are
// forwarded directly, chunk by chunk while the scan runs (flushScan), to
// bound memory; otelcol_processor_cdc_deletes_emitted counts those too.
func (p *cdcProcessor) processLogs(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
	bb := p.bufs.Get().(*batchBuf)
	items := p.collect(ctx, ld, bb)
	if len(items) == 0 {
		p.putBuf(bb)
		return ld, nil
	}
	p.mu.Lock()
	if p.client == nil {
		p.mu.Unlock()
		p.putBuf(bb)
		return ld, errNotStarted
	}
	if err := p.use(ctx, journal.PartitionOf(ctx)); err != nil {
		p.mu.Unlock()
		p.putBuf(bb)
		return ld, err
	}
	deletes, err := p.apply(ctx, items, bb)
	p.mu.Unlock()
	if err != nil {
		// Nothing was forwarded for this batch (except full chunks of derived
		// deletes, which are idempotent), so a retry is safe.
		p.putBuf(bb)
		return ld, err
	}
	p.write(ctx, items)
	removeDropped(ld, items)
	p.putBuf(bb)
	if deletes.LogRecordCount() > 0 {
		deletes.ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
	}
	return ld, nil
}

// batchBuf is the scratch memory of one incoming batch (items, their slices,
// record states, encodings), pooled so that steady state allocates little
// per batch. Nothing in it is referenced once ConsumeLogs forwards the batch.
type batchBuf struct {
	arena []item
	items []*item
	slab  prepSlab
	recs  []state.Record
	ents  []recEntry
	index map[string]int32 // state key → index in ents
	keys  []string
	slabs state.Slabs // slices of decoded record states
}

// maxPooledItems bounds the batches whose scratch is kept for reuse.
const maxPooledItems = 1 << 16

func (p *cdcProcessor) putBuf(bb *batchBuf) {
	if cap(bb.arena) > maxPooledItems {
		return
	}
	// Items and records are large: only the used part is cleared (slots
	// beyond len were zeroed when given back, or never used).
	clear(bb.arena)
	clear(bb.recs)
	clear(bb.items[:cap(bb.items)])
	clear(bb.ents[:cap(bb.ents)])
	clear(bb.keys[:cap(bb.keys)])
	clear(bb.index)
	bb.slab.reset()
	bb.slabs.Reset()
	bb.arena, bb.items, bb.recs, bb.ents, bb.keys = bb.arena[:0], bb.items[:0], bb.recs[:0], bb.ents[:0], bb.keys[:0]
	p.bufs.Put(bb)
}

// collect finds the events the processor acts on and prepares them.
func (p *cdcProcessor) collect(ctx context.Context, ld plog.Logs, bb *batchBuf) []*item {
	var (
		runs runCache
		last lastMatch
	)
	if n := ld.LogRecordCount(); cap(bb.arena) < n {
		bb.arena = make([]item, 0, n) // at most one item per log record: never grows below
	}
	arena, items, slab := bb.arena[:0], bb.items[:0], &bb.slab
	enc := p.encoders.Get().(*recordEnc)
	defer func() {
		enc.release()
		p.encoders.Put(enc)
	}()
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				var kind itemKind
				role := RoleTarget
				switch lr.EventName() {
				case auditevent.RecordWrite:
					kind = kindWrite
				case auditevent.RecordDelete:
					kind = kindDelete
				case auditevent.RecordRead:
					if !p.sources {
						continue
					}
					kind, role = kindWrite, RoleSource
				case auditevent.BatchEnd:
					kind = kindEnd
				default:
					continue
				}
				arena = arena[:len(arena)+1]
				it := &arena[len(arena)-1]
				// Slots are zero: fresh, or cleared when given back below.
				it.lr, it.rl, it.kind, it.pos = lr, rl, kind, [3]int{i, j, k}
				if kind == kindEnd {
					full := auditevent.FromLogRecord(lr, rl.Resource())
					if full.BatchID == "" {
						p.unclassified(ctx, reasonNoBatch, full.ID, full.Name, full.RecordID)
						*it, arena = item{}, arena[:len(arena)-1]
						continue
					}
					it.full = &full
					it.ev.BatchID = full.BatchID
					it.run = state.RunID(full.BatchID)
					items = append(items, it)
					continue
				}
				readEvent(it, lr, rl.Resource())
				d := it.ev.Target
				if role == RoleSource {
					d = it.ev.Source
				}
				it.namespace, it.name = d.Namespace, d.Name
				if it.ds, it.dsID = last.lookup(p.match, role, d.Namespace, d.Name); it.ds == nil {
					*it, arena = item{}, arena[:len(arena)-1]
					continue
				}
				if err := p.prepare(it, enc, slab, &runs); err != nil {
					p.unclassified(ctx, reasonOf(err), it.ev.ID, it.ev.Name, it.ev.RecordID)
					// Unclassified or not, the dataset's redaction applies.
					p.writeRecordData(lr.Attributes(), it)
					continue
				}
				items = append(items, it)
			}
		}
	}
	bb.arena, bb.items = arena, items
	setStateKeys(items)
	return items
}

// setStateKeys sets the state keys of the record items, from one text slab
// (a few allocations per batch instead of one per item).
func setStateKeys(items []*item) {
	var texts textSlab
	texts.grow(len(items) * state.RecordKeyLen) // exact for the usual 16-hex-digit dataset ids
	var tmp [state.RecordKeyLen]byte
	for _, it := range items {
		if it.kind != kindEnd {
			it.skey = texts.add(state.AppendRecordKey(tmp[:0], it.dsID, it.kh))
		}
	}
}

func (p *cdcProcessor) unclassified(ctx context.Context, reason, id, name, recordID string) {
	p.tel.ProcessorCdcUnclassified.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	p.set.Logger.Warn("cdc: event passed through unclassified", zap.String("reason", reason),
		zap.String("event_id", id), zap.String("event_name", name), zap.String("record_id", recordID))
}

// removeDropped removes the no_change events marked for suppression; items
// know their position, so no marker has to be put on the records.
func removeDropped(ld plog.Logs, items []*item) {
	drop := map[[3]int]bool{}
	for _, it := range items {
		if it.drop {
			drop[it.pos] = true
		}
	}
	if len(drop) == 0 {
		return
	}
	i := -1
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		i++
		j := -1
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			j++
			k := -1
			sl.LogRecords().RemoveIf(func(plog.LogRecord) bool {
				k++
				return drop[[3]int{i, j, k}]
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
}

package cdcprocessor

import (
	"context"
	"slices"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// endRun handles a batch end: for a successful run it derives deletes for
// the full-snapshot datasets the run wrote, it keeps the key index compact,
// and it attaches the run's change counts to the batch end event. All of it
// is idempotent: a redelivered batch end re-emits the same deletes (same
// ids) and the same counts.
func (p *cdcProcessor) endRun(ctx context.Context, b *batchState, it *item) error {
	run, err := p.st.Run(ctx, it.run, it.full.BatchID)
	if err != nil {
		return err
	}
	dsets := slices.Clone(run.Datasets)
	// A batch end may name a dataset the run did not write to at all (an
	// empty snapshot): include it.
	if t := it.full.Target; t.Name != "" {
		if d := p.match.match(RoleTarget, t.Namespace, t.Name); d != nil {
			id := state.DatasetID(RoleTarget, t.Namespace, t.Name)
			p.st.Meta(id, RoleTarget, t.Namespace, t.Name)
			found := false
			for i := range dsets {
				if dsets[i].ID == id {
					found = true
					dsets[i].Partitions = append(slices.Clone(dsets[i].Partitions), it.full.Partition)
				}
			}
			if !found {
				dsets = append(dsets, state.RunDataset{ID: id, Partitions: []string{it.full.Partition}})
			}
		}
	}
	success := it.full.BatchResult == auditevent.ResultSuccess
	for _, rd := range dsets {
		meta := p.st.Known(rd.ID)
		if meta == nil {
			continue
		}
		d := p.match.match(meta.Role, meta.Namespace, meta.Name)
		if d == nil {
			continue // no longer configured
		}
		del := success && d.cfg.FullSnapshot
		if !del && !needsMaintenance(meta) {
			continue
		}
		var scope map[string]bool
		if del && d.cfg.DeleteScope == ScopePartition {
			scope = map[string]bool{}
			for _, q := range rd.Partitions {
				scope[q] = true
			}
		}
		if err := p.scan(ctx, b, it, run, rd.ID, meta, del, scope); err != nil {
			return err
		}
	}
	if !success && len(dsets) > 0 {
		p.set.Logger.Debug("cdc: run did not succeed; no deletes derived", zap.String("batch_id", it.full.BatchID),
			zap.String("result", it.full.BatchResult))
	}
	run.Ended = true
	p.st.SaveRun(run, p.clock(ctx))
	p.st.ExpireRuns(p.clock(ctx).Add(-p.cfg.RunTTL))
	if err := p.st.Flush(ctx); err != nil {
		return err
	}
	c := run.Counts
	it.counts = &auditevent.ChangeCounters{Inserted: c.Inserted, Updated: c.Updated, Deleted: c.Deleted, Unchanged: c.Unchanged}
	return nil
}

// needsMaintenance: deleted keys kept for redelivery, or stale index
// positions, outnumber half the live keys (so scans stay amortized O(1) per
// write).
func needsMaintenance(m *state.Meta) bool {
	limit := max(uint64(state.ChunkSize), m.Live/2)
	return m.Tombs > limit || m.Stale() > limit
}

// scan walks the key index of one dataset chunk by chunk (memory is bounded
// by one chunk and its record states). With del it tombstones every live key
// of the scope that run did not write and emits a delete for it; keys this
// run deleted before are emitted again (a redelivered batch end). Older
// tombstones are purged, and the index is compacted when it has many stale
// positions. Each chunk is committed in its own storage call; a crash
// between chunks leaves a consistent state that the next scan completes.
func (p *cdcProcessor) scan(ctx context.Context, b *batchState, end *item, run *state.Run, ds string, meta *state.Meta, del bool, scope map[string]bool) error {
	compact := meta.Stale() > max(uint64(state.ChunkSize), (meta.Live+meta.Tombs)/2)
	chunks := p.st.Chunks(ds)
	var (
		newSlot  uint64
		newChunk []state.KeyHash
		newNo    uint64
		buf      []byte
	)
	for c := uint64(0); c < chunks; c++ {
		keys, err := p.st.ReadChunk(ctx, ds, c)
		if err != nil {
			return err
		}
		skeys := make([]string, len(keys))
		for i, k := range keys {
			skeys[i] = state.RecordKey(ds, k)
		}
		vals, err := p.st.Get(ctx, skeys...)
		if err != nil {
			return err
		}
		for i, v := range vals {
			pos := c*state.ChunkSize + uint64(i)
			if v == nil {
				continue // stale: the key was purged
			}
			var rec state.Record
			if err := rec.UnmarshalShared(v, &p.names); err != nil {
				return err
			}
			if rec.Slot != pos {
				continue // stale: the key moved (compaction) or came back elsewhere
			}
			changed := false
			switch {
			case rec.Tombstone && rec.DeletedRun == run.ID:
				if del {
					p.emitDelete(ctx, b, end, meta, &rec)
				}
			case rec.Tombstone:
				p.st.Delete(skeys[i])
				meta.Tombs--
				continue
			case del && rec.LastRun != run.ID && (scope == nil || scope[rec.Partition]):
				rec.Tombstone, rec.DeletedRun = true, run.ID
				meta.Live--
				meta.Tombs++
				run.Counts.Deleted++
				changed = true
				p.emitDelete(ctx, b, end, meta, &rec)
			}
			if compact {
				if rec.Slot != newSlot {
					rec.Slot = newSlot
					changed = true
				}
				newChunk = append(newChunk, keys[i])
				newSlot++
				if len(newChunk) == state.ChunkSize {
					p.st.WriteChunk(ds, newNo, newChunk)
					newNo++
					newChunk = newChunk[:0]
				}
			}
			if changed {
				buf = rec.Marshal(buf[:0])
				p.st.Put(skeys[i], append([]byte(nil), buf...))
			}
		}
		if err := p.flushScan(ctx, b, ds, run); err != nil {
			return err
		}
	}
	if compact {
		if len(newChunk) > 0 {
			p.st.WriteChunk(ds, newNo, newChunk)
			newNo++
		}
		for c := newNo; c < chunks; c++ {
			p.st.DeleteChunk(ds, c)
		}
		p.st.SetSlots(ds, newSlot)
		return p.flushScan(ctx, b, ds, run)
	}
	return nil
}

// flushScan commits one scan step together with the dataset meta and the
// run counts, and forwards derived deletes once there are enough of them,
// so neither state writes nor deletes accumulate in memory.
func (p *cdcProcessor) flushScan(ctx context.Context, b *batchState, ds string, run *state.Run) error {
	p.st.SaveMeta(ds)
	p.st.SaveRun(run, p.clock(ctx))
	if err := p.st.Flush(ctx); err != nil {
		return err
	}
	if b.out.LogRecordCount() >= p.cfg.MaxScanBatch {
		out := b.out
		b.out = plog.NewLogs()
		return p.next.ConsumeLogs(ctx, out)
	}
	return nil
}

// emitDelete appends the derived delete of rec to b.out. Its id depends only
// on the run, the dataset and the record, so a redelivered batch end yields
// the same ids and the store deduplicates them.
func (p *cdcProcessor) emitDelete(ctx context.Context, b *batchState, end *item, meta *state.Meta, rec *state.Record) {
	e := auditevent.Event{
		ID:           auditevent.DeterministicID(derivedBy, auditevent.RecordDelete, end.full.BatchID, meta.Role, meta.Namespace, meta.Name, rec.RecordID),
		Name:         auditevent.RecordDelete,
		Time:         end.full.Time,
		TraceID:      end.full.TraceID,
		SpanID:       end.full.SpanID,
		BatchID:      end.full.BatchID,
		JobName:      end.full.JobName,
		JobNamespace: end.full.JobNamespace,
		Actor:        end.full.Actor,
		Target:       auditevent.Dataset{Namespace: meta.Namespace, Name: meta.Name},
		RecordID:     rec.RecordID,
		Partition:    rec.Partition,
		PreviousHash: decodeHash(rec.RecHash),
		ChangeType:   auditevent.ChangeDelete,
		DerivedBy:    derivedBy,
	}
	// Deletes of one batch end share the batch end's resource (service.name
	// and the job's resource attributes).
	if b.outFor != end || b.out.ResourceLogs().Len() == 0 {
		rl := b.out.ResourceLogs().AppendEmpty()
		end.rl.Resource().CopyTo(rl.Resource())
		b.outSL = rl.ScopeLogs().AppendEmpty()
		b.outSL.Scope().SetName(metadata.ScopeName)
		b.outFor = end
	}
	e.ToLogRecord(b.outSL.LogRecords().AppendEmpty())
	end.deletes++
	p.tel.ProcessorCdcDeletesEmitted.Add(ctx, 1)
}

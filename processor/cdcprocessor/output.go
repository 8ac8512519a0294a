package cdcprocessor

import (
	"context"
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// write puts the classification results on the log records. Only the
// attributes the processor owns are touched; everything else the job sent is
// left as it was.
func (p *cdcProcessor) write(ctx context.Context, items []*item) {
	n := 0 // events that get hash texts: room for a previous and a record hash each
	for _, it := range items {
		if it.kind == kindDelete || (it.kind == kindWrite && it.change != state.ChangeNone) {
			n++
		}
	}
	var texts textSlab
	texts.grow(128 * n)
	for _, it := range items {
		attrs := it.lr.Attributes()
		switch it.kind {
		case kindEnd:
			if c := it.counts; c != nil {
				attrs.PutInt(auditevent.AttrRecordsInserted, c.Inserted)
				attrs.PutInt(auditevent.AttrRecordsUpdated, c.Updated)
				attrs.PutInt(auditevent.AttrRecordsDeleted, c.Deleted)
				attrs.PutInt(auditevent.AttrRecordsUnchanged, c.Unchanged)
			}
			continue
		case kindDelete:
			attrs.PutStr(auditevent.AttrChangeType, auditevent.ChangeDelete)
			putHash(attrs, auditevent.AttrPreviousHash, it.prev, &texts)
			continue
		}
		if it.change == state.ChangeNone {
			continue
		}
		attrs.PutStr(auditevent.AttrChangeType, changeNames[it.change])
		putHash(attrs, auditevent.AttrPreviousHash, it.prev, &texts)
		if !it.jobHash && it.recHash != nil {
			attrs.PutStr(auditevent.AttrRecordHash, texts.hash(it.recHash))
			if _, ok := attrs.Get(auditevent.AttrHashAlgorithm); !ok {
				attrs.PutStr(auditevent.AttrHashAlgorithm, "sha256")
			}
		}
		if len(it.changed) > 0 {
			s := attrs.PutEmptySlice(auditevent.AttrChangedFields) // replaces a value the job sent
			s.EnsureCapacity(len(it.changed))
			for _, f := range it.changed {
				s.AppendEmpty().SetStr(f)
			}
		} else {
			attrs.Remove(auditevent.AttrChangedFields)
		}
		attrs.Remove(auditevent.AttrOldValue)
		attrs.Remove(auditevent.AttrNewValue)
		if it.change == state.ChangeUpdate && it.ds.cfg.KeepOldValues && it.changed != nil {
			putMap(attrs, auditevent.AttrOldValue, it.oldVals)
			putMap(attrs, auditevent.AttrNewValue, pick(it.ds.redact(it.ds.project(it.rawData())), it.changed))
		}
		p.writeRecordData(attrs, it)
		if it.change == state.ChangeNoChange && p.cfg.NoChange != NoChangeKeep {
			it.drop = true
			p.tel.ProcessorCdcNoChangeSuppressed.Add(ctx, 1)
		}
	}
}

// writeRecordData applies record_data: the exported record data is either
// removed or carries the dataset's redaction.
func (p *cdcProcessor) writeRecordData(attrs pcommon.Map, it *item) {
	if !it.hasData {
		return
	}
	if p.cfg.RecordData == RecordDataDrop {
		attrs.Remove(auditevent.AttrRecordData)
		return
	}
	if it.ds.redacts {
		putMap(attrs, auditevent.AttrRecordData, it.ds.redact(it.rawData()))
	}
}

func putHash(attrs pcommon.Map, key string, h []byte, texts *textSlab) {
	if h == nil {
		attrs.Remove(key)
		return
	}
	attrs.PutStr(key, texts.hash(h))
}

// textSlab hands out strings that share one growing buffer, so that a
// batch's state keys and hash texts cost a few allocations instead of one
// each. A string handed out never changes: the builder only appends.
type textSlab struct{ sb strings.Builder }

func (t *textSlab) grow(n int) { t.sb.Grow(n) }

// add returns b as a string from the slab.
func (t *textSlab) add(b []byte) string {
	start := t.sb.Len()
	t.sb.Write(b)
	return t.sb.String()[start:]
}

// hash returns decodeHash(h), from the slab for the usual 32-byte hashes.
func (t *textSlab) hash(h []byte) string {
	if len(h) != 32 {
		return decodeHash(h)
	}
	var tmp [64]byte
	hex.Encode(tmp[:], h)
	return t.add(tmp[:])
}

func putMap(attrs pcommon.Map, key string, m map[string]any) {
	if m == nil {
		attrs.Remove(key)
		return
	}
	_ = attrs.PutEmptyMap(key).FromRaw(m)
}

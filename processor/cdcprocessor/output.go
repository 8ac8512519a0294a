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
	hexes := encodeHashes(items)
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
			putHash(attrs, auditevent.AttrPreviousHash, it.prev, hexes.next(it.prev))
			continue
		}
		if it.change == state.ChangeNone {
			continue
		}
		attrs.PutStr(auditevent.AttrChangeType, changeNames[it.change])
		putHash(attrs, auditevent.AttrPreviousHash, it.prev, hexes.next(it.prev))
		if !it.jobHash && it.recHash != nil {
			attrs.PutStr(auditevent.AttrRecordHash, hexes.get(it.recHash))
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

func putHash(attrs pcommon.Map, key string, h []byte, text string) {
	if h == nil {
		attrs.Remove(key)
		return
	}
	attrs.PutStr(key, text)
}

// hashTexts are the exported forms (decodeHash) of a batch's 32-byte
// hashes, encoded into one string in the order write puts them on the
// events: one allocation per batch instead of one per hash.
type hashTexts struct {
	all string
	off int
}

// encodeHashes encodes the hashes write exports, in the order it visits
// them (previous hash, then record hash when the processor computed it).
func encodeHashes(items []*item) hashTexts {
	n := 0
	each := func(fn func(h []byte)) {
		for _, it := range items {
			switch {
			case it.kind == kindDelete:
				fn(it.prev)
			case it.kind == kindWrite && it.change != state.ChangeNone:
				fn(it.prev)
				if !it.jobHash {
					fn(it.recHash)
				}
			}
		}
	}
	each(func(h []byte) {
		if len(h) == 32 {
			n++
		}
	})
	// A strings.Builder grown once gives the string without copying it.
	var sb strings.Builder
	sb.Grow(64 * n)
	var tmp [64]byte
	each(func(h []byte) {
		if len(h) == 32 {
			hex.Encode(tmp[:], h)
			sb.Write(tmp[:])
		}
	})
	return hashTexts{all: sb.String()}
}

// next returns the text of hash h, the next hash encodeHashes visited (nil
// gives "").
func (t *hashTexts) next(h []byte) string {
	if h == nil {
		return ""
	}
	return t.get(h)
}

func (t *hashTexts) get(h []byte) string {
	if len(h) != 32 {
		return decodeHash(h)
	}
	s := t.all[t.off : t.off+64]
	t.off += 64
	return s
}

func putMap(attrs pcommon.Map, key string, m map[string]any) {
	if m == nil {
		attrs.Remove(key)
		return
	}
	_ = attrs.PutEmptyMap(key).FromRaw(m)
}

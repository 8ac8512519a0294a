package cdcprocessor

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

type itemKind int

const (
	kindWrite  itemKind = iota // record.write (or record.read of a source dataset): classify
	kindDelete                 // record.delete from the job
	kindEnd                    // batch end
)

// item is one event the processor acts on, with everything computed that
// needs no state (hashes, key, redaction), so the state lock is held only
// for lookups and updates.
type item struct {
	lr   plog.LogRecord
	rl   plog.ResourceLogs
	ev   auditevent.Event
	kind itemKind
	pos  [3]int // resource, scope, record index in the incoming batch

	ds        *dataset
	dsID      string
	namespace string
	name      string
	key       string
	skey      string // state key
	kh        state.KeyHash
	evh       [16]byte
	hasID     bool
	run       uint64

	recHash []byte // exported record hash (stored form, see encodeHash)
	jobHash bool   // the job sent batchaudit.record.hash
	cmpHash []byte // 32-byte hash over the configured fields; nil without record data
	fields  []state.FieldSum
	newVals map[string]any // redacted projected record (keep_old_values)
	oldJSON []byte         // canonical JSON of newVals, stored for the next update

	// results
	change  state.Change
	prev    []byte
	changed []string
	oldVals map[string]any
	replay  bool
	drop    bool
	deletes int
	counts  *auditevent.ChangeCounters // batch end: the run's totals
}

var (
	errNoKey       = errors.New("no record key: the event has no batchaudit.record.id and the record data lacks the key fields")
	errNoHash      = errors.New("nothing to compare: the event has neither batchaudit.record.data nor batchaudit.record.hash")
	errUnhashable  = errors.New("record data cannot be hashed canonically")
	errNoBatch     = errors.New("no batchaudit.batch.id")
	reasonNoKey    = "no_key"
	reasonNoHash   = "no_data_or_hash"
	reasonHash     = "unhashable"
	reasonNoBatch  = "no_batch_id"
	reasonBadState = "corrupt_state"
)

func reasonOf(err error) string {
	switch {
	case errors.Is(err, errNoKey):
		return reasonNoKey
	case errors.Is(err, errNoHash):
		return reasonNoHash
	case errors.Is(err, errUnhashable):
		return reasonHash
	case errors.Is(err, errNoBatch):
		return reasonNoBatch
	}
	return reasonBadState
}

// prepare computes the stateless part of a record item: key, hashes,
// per-field hashes and redacted values.
func (p *cdcProcessor) prepare(it *item, fh *canonical.FieldHasher, buf []byte) ([]byte, error) {
	e := &it.ev
	if e.BatchID == "" {
		return buf, errNoBatch
	}
	it.run = state.RunID(e.BatchID)
	if e.ID != "" {
		it.evh, it.hasID = state.EventHash(e.ID), true
	}
	key, err := recordKey(it.ds, e)
	if err != nil {
		return buf, err
	}
	it.key = key
	it.kh = state.HashKey(key)
	it.skey = state.RecordKey(it.dsID, it.kh)
	if it.kind == kindDelete {
		return buf, nil
	}
	if e.RecordHash != "" {
		it.recHash, it.jobHash = encodeHash(e.RecordHash), true
	}
	if e.RecordData == nil {
		if !it.jobHash {
			return buf, errNoHash
		}
		return buf, nil
	}
	proj := it.ds.project(e.RecordData)
	if buf, err = canonical.AppendJSON(buf[:0], proj); err != nil {
		return buf, errors.Join(errUnhashable, err)
	}
	sum := sha256.Sum256(buf)
	it.cmpHash = sum[:]
	if !it.jobHash {
		if it.ds.projects() {
			full, err := canonical.Marshal(e.RecordData)
			if err != nil {
				return buf, errors.Join(errUnhashable, err)
			}
			s := sha256.Sum256(full)
			it.recHash = s[:]
		} else {
			it.recHash = it.cmpHash
		}
	}
	it.fields = make([]state.FieldSum, 0, len(proj))
	var sbuf [sha256.Size]byte
	for name, v := range proj {
		s, err := fh.Sum(sbuf[:0], name, v)
		if err != nil {
			return buf, errors.Join(errUnhashable, err)
		}
		it.fields = append(it.fields, state.FieldSum{Name: name, Sum: binary.LittleEndian.Uint64(s)})
	}
	slices.SortFunc(it.fields, func(a, b state.FieldSum) int { return strings.Compare(a.Name, b.Name) })
	if it.ds.cfg.KeepOldValues {
		it.newVals = it.ds.redact(proj)
		if it.oldJSON, err = canonical.Marshal(it.newVals); err != nil {
			return buf, errors.Join(errUnhashable, err)
		}
	}
	return buf, nil
}

// recordKey is the key of the record within its dataset: the key fields'
// values (one field: its value as text; several: the canonical JSON array of
// the values), else the record id.
func recordKey(d *dataset, e *auditevent.Event) (string, error) {
	fields := d.cfg.KeyFields
	if len(fields) == 0 {
		fields = e.KeyFields
	}
	if len(fields) > 0 && e.RecordData != nil {
		vals := make([]any, 0, len(fields))
		for _, f := range fields {
			v, ok := e.RecordData[f]
			if !ok {
				vals = nil
				break
			}
			vals = append(vals, v)
		}
		switch {
		case len(vals) == 1:
			if s, ok := vals[0].(string); ok {
				return s, nil
			}
			b, err := canonical.Marshal(vals[0])
			if err != nil {
				return "", errors.Join(errUnhashable, err)
			}
			return string(b), nil
		case len(vals) > 1:
			b, err := canonical.Marshal(vals)
			if err != nil {
				return "", errors.Join(errUnhashable, err)
			}
			return string(b), nil
		}
	}
	if e.RecordID != "" {
		return e.RecordID, nil
	}
	return "", errNoKey
}

// Record hashes are stored as 32 raw bytes when they are SHA-256 hex (the
// convention), else as a marker byte and the text (other algorithms).
const textHash = 0xff

func encodeHash(h string) []byte {
	if len(h) == 64 {
		if b, err := hex.DecodeString(h); err == nil && hex.EncodeToString(b) == h {
			return b
		}
	}
	return append([]byte{textHash}, h...)
}

func decodeHash(b []byte) string {
	if len(b) == 32 {
		return hex.EncodeToString(b)
	}
	if len(b) > 0 && b[0] == textHash {
		return string(b[1:])
	}
	return hex.EncodeToString(b)
}

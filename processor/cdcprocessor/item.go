package cdcprocessor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"go.opentelemetry.io/collector/pdata/pcommon"
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
	lr      plog.LogRecord
	rl      plog.ResourceLogs
	ev      eventInfo
	full    *auditevent.Event // batch end: the whole event (derived deletes copy from it)
	data    pcommon.Map       // batchaudit.record.data, if hasData
	hasData bool
	raw     map[string]any // data as Go values, built only when needed (redaction, old values)
	kind    itemKind
	ent     int32  // 1 + index of the record's batchState entry, set by load (0: none)
	pos     [3]int // resource, scope, record index in the incoming batch

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

	hashes  [2 * sha256.Size]byte // backing of cmpHash and recHash (items are allocated together)
	recHash []byte                // exported record hash (stored form, see encodeHash)
	jobHash bool                  // the job sent batchaudit.record.hash
	cmpHash []byte                // 32-byte hash over the configured fields; nil without record data
	fields  []state.FieldSum      // compared fields; sums filled in by classify (sumFields)
	pairs   []byte                // the compared fields' canonical members, back to back
	ends    []int32               // end of each field's member in pairs
	newVals map[string]any        // redacted projected record (keep_old_values)
	oldJSON []byte                // canonical JSON of newVals, stored for the next update

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
// per-field hashes and redacted values. The record data is serialized once
// (recordEnc) for all of them.
func (p *cdcProcessor) prepare(it *item, enc *recordEnc, slab *prepSlab, runs *runCache) error {
	e := &it.ev
	if e.BatchID == "" {
		return errNoBatch
	}
	it.run = runs.id(e.BatchID)
	if e.ID != "" {
		it.evh, it.hasID = state.EventHash(e.ID), true
	}
	if it.hasData {
		enc.encode(it.data, it.ds)
	}
	key, err := recordKey(it.ds, e, it.hasData, enc)
	if err != nil {
		return err
	}
	it.key = key
	it.kh = state.HashKey(key) // it.skey is set by collect for the whole batch
	if it.kind == kindDelete {
		return nil
	}
	if e.RecordHash != "" {
		it.jobHash = true
		if it.recHash = it.hashes[32:64:64]; !decodeHexHash(it.recHash, e.RecordHash) {
			it.recHash = encodeHash(e.RecordHash)
		}
	}
	if !it.hasData {
		if !it.jobHash {
			return errNoHash
		}
		return nil
	}
	cmp, ok := enc.hash(false)
	if !ok {
		return errUnhashable
	}
	it.cmpHash = it.hashes[0:32:32]
	copy(it.cmpHash, cmp[:])
	if !it.jobHash {
		if it.ds.projects() {
			full, ok := enc.hash(true)
			if !ok {
				return errUnhashable
			}
			it.recHash = it.hashes[32:64:64]
			copy(it.recHash, full[:])
		} else {
			it.recHash = it.cmpHash
		}
	}
	if it.fields, it.pairs, it.ends, ok = enc.compared(slab); !ok {
		return errUnhashable
	}
	if it.ds.cfg.KeepOldValues {
		it.newVals = it.ds.redact(it.ds.project(it.rawData()))
		if it.oldJSON, err = canonical.Marshal(it.newVals); err != nil {
			return errors.Join(errUnhashable, err)
		}
	}
	return nil
}

// rawData is the record data as Go values (as auditevent.FromLogRecord
// gives it), converted once and only when needed.
func (it *item) rawData() map[string]any {
	if it.raw == nil && it.hasData {
		it.raw = it.data.AsRaw()
	}
	return it.raw
}

// runCache remembers the last batch id's run id: an incoming batch usually
// holds the events of one run.
type runCache struct {
	batch string
	run   uint64
}

func (c *runCache) id(batchID string) uint64 {
	if batchID != c.batch || c.batch == "" {
		c.batch, c.run = batchID, state.RunID(batchID)
	}
	return c.run
}

// recordKey is the key of the record within its dataset: the key fields'
// values (one field: its value as text; several: the canonical JSON array of
// the values), else the record id.
func recordKey(d *dataset, e *eventInfo, hasData bool, enc *recordEnc) (string, error) {
	fields := d.cfg.KeyFields
	if len(fields) == 0 {
		fields = e.KeyFields
	}
	if len(fields) > 0 && hasData {
		key, ok, err := enc.key(fields)
		if err != nil {
			return "", err
		}
		if ok {
			return key, nil
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
	if b := make([]byte, 32); decodeHexHash(b, h) {
		return b
	}
	return append([]byte{textHash}, h...)
}

// decodeHexHash decodes h into the 32 bytes of dst if h is lowercase
// SHA-256 hex (so encoding dst again gives h back).
func decodeHexHash(dst []byte, h string) bool {
	if len(h) != 64 {
		return false
	}
	bad := byte(0)
	for i := range dst[:32] {
		hi, lo := hexValue[h[2*i]], hexValue[h[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

// hexValue maps lowercase hex digits to their value and everything else to
// 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

func decodeHash(b []byte) string {
	if len(b) == 32 {
		return hex.EncodeToString(b)
	}
	if len(b) > 0 && b[0] == textHash {
		return string(b[1:])
	}
	return hex.EncodeToString(b)
}

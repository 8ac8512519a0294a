package state

import (
	"encoding/binary"
	"errors"
)

// Change is a change type in its stored (one byte) form.
type Change byte

// Stored change types.
const (
	ChangeNone Change = iota
	ChangeInsert
	ChangeUpdate
	ChangeDelete
	ChangeNoChange
)

// FieldSum is the truncated hash of one top-level field: enough to tell
// whether the field changed, never its value.
type FieldSum struct {
	Name string
	Sum  uint64
}

// Memo is the classification one event got, kept so a redelivered event
// (same event id) gets exactly the same answer again.
type Memo struct {
	Event    [16]byte // truncated SHA-256 of the event id
	Run      uint64   // run of the event; a later run's write clears older runs' memos
	Change   Change
	PrevHash []byte   // 32 bytes or nil
	Fields   []string // changed field names (names only)
	Old      []byte   // redacted previous values as canonical JSON (keep_old_values only)
}

// Record is the state of one key of one dataset.
type Record struct {
	Slot       uint64 // position in the dataset's key index; an index entry is valid only if it points back here
	LastRun    uint64 // run (truncated batch id hash) that last wrote the key
	DeletedRun uint64 // run that deleted it (Tombstone only)
	Tombstone  bool   // deleted; kept until the dataset's next maintenance so redeliveries replay
	RecordID   string // the record id as the job sent it; needed to emit derived deletes
	Partition  string
	RecHash    []byte // record hash as exported (32 bytes); previous_hash of the next version
	CmpHash    []byte // hash over the configured fields (nil if equal to RecHash or unknown)
	Fields     []FieldSum
	FieldsOK   bool   // Fields are current (false after a hash-only update)
	Old        []byte // redacted projected record as canonical JSON (keep_old_values only)
	Memo       []Memo // newest first
}

const recordVersion = 1

const (
	flagTomb = 1 << iota
	flagFieldsOK
	flagCmp
	flagOld
)

// Marshal appends the binary form of r to dst.
func (r *Record) Marshal(dst []byte) []byte {
	var flags byte
	if r.Tombstone {
		flags |= flagTomb
	}
	if r.FieldsOK {
		flags |= flagFieldsOK
	}
	if r.CmpHash != nil {
		flags |= flagCmp
	}
	if r.Old != nil {
		flags |= flagOld
	}
	dst = append(dst, recordVersion, flags)
	dst = binary.AppendUvarint(dst, r.Slot)
	dst = binary.LittleEndian.AppendUint64(dst, r.LastRun)
	dst = binary.LittleEndian.AppendUint64(dst, r.DeletedRun)
	dst = appendBytes(dst, []byte(r.RecordID))
	dst = appendBytes(dst, []byte(r.Partition))
	dst = appendBytes(dst, r.RecHash)
	if r.CmpHash != nil {
		dst = append(dst, r.CmpHash...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Fields)))
	for _, f := range r.Fields {
		dst = appendBytes(dst, []byte(f.Name))
		dst = binary.LittleEndian.AppendUint64(dst, f.Sum)
	}
	if r.Old != nil {
		dst = appendBytes(dst, r.Old)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Memo)))
	for _, m := range r.Memo {
		dst = append(dst, m.Event[:]...)
		dst = binary.LittleEndian.AppendUint64(dst, m.Run)
		dst = append(dst, byte(m.Change))
		dst = appendBytes(dst, m.PrevHash)
		dst = binary.AppendUvarint(dst, uint64(len(m.Fields)))
		for _, f := range m.Fields {
			dst = appendBytes(dst, []byte(f))
		}
		dst = appendBytes(dst, m.Old)
	}
	return dst
}

var errCorrupt = errors.New("cdc state: corrupt record state")

// Unmarshal decodes a record state written by Marshal.
func (r *Record) Unmarshal(b []byte) error {
	d := decoder{b: b}
	if d.byte() != recordVersion {
		return errCorrupt
	}
	flags := d.byte()
	*r = Record{Tombstone: flags&flagTomb != 0, FieldsOK: flags&flagFieldsOK != 0}
	r.Slot = d.uvarint()
	r.LastRun = d.uint64()
	r.DeletedRun = d.uint64()
	r.RecordID = string(d.bytes())
	r.Partition = string(d.bytes())
	r.RecHash = d.copyBytes()
	if flags&flagCmp != 0 {
		r.CmpHash = d.copyN(32)
	}
	if n := d.count(); n > 0 {
		r.Fields = make([]FieldSum, n)
		for i := range r.Fields {
			r.Fields[i] = FieldSum{Name: string(d.bytes()), Sum: d.uint64()}
		}
	}
	if flags&flagOld != 0 {
		r.Old = d.copyBytes()
	}
	if n := d.count(); n > 0 {
		r.Memo = make([]Memo, n)
		for i := range r.Memo {
			m := &r.Memo[i]
			copy(m.Event[:], d.n(16))
			m.Run = d.uint64()
			m.Change = Change(d.byte())
			m.PrevHash = d.copyBytes()
			if k := d.count(); k > 0 {
				m.Fields = make([]string, k)
				for j := range m.Fields {
					m.Fields[j] = string(d.bytes())
				}
			}
			m.Old = d.copyBytes()
		}
	}
	if d.err {
		return errCorrupt
	}
	return nil
}

// FindMemo returns the memo of event id hash ev, if kept.
func (r *Record) FindMemo(ev [16]byte) (Memo, bool) {
	for _, m := range r.Memo {
		if m.Event == ev {
			return m, true
		}
	}
	return Memo{}, false
}

// PushMemo records m as the newest memo and keeps at most depth entries, all
// of m's run: once a later run writes the key, redeliveries of older runs'
// events are no longer expected (so steady state keeps one memo per key).
func (r *Record) PushMemo(m Memo, depth int) {
	out := make([]Memo, 1, depth)
	out[0] = m
	for _, o := range r.Memo {
		if len(out) >= depth {
			break
		}
		if o.Run == m.Run {
			out = append(out, o)
		}
	}
	r.Memo = out
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads the binary form; any overrun sets err instead of panicking.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) n(k int) []byte {
	if d.err || k < 0 || len(d.b) < k {
		d.err = true
		return nil
	}
	out := d.b[:k]
	d.b = d.b[k:]
	return out
}

func (d *decoder) byte() byte {
	if b := d.n(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if b := d.n(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[k:]
	return v
}

// count reads a length that must fit in the remaining bytes.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.err = true
		return 0
	}
	return int(v)
}

func (d *decoder) bytes() []byte { return d.n(d.count()) }

func (d *decoder) copyN(k int) []byte {
	b := d.n(k)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *decoder) copyBytes() []byte {
	k := d.count()
	if k == 0 {
		return nil
	}
	return d.copyN(k)
}

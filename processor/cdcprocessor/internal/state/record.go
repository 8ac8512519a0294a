package state

import (
	"encoding/binary"
	"errors"
	"unsafe"
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
func (r *Record) Unmarshal(b []byte) error { return r.UnmarshalShared(b, nil) }

// UnmarshalShared is Unmarshal without copies: the hashes, old values and
// record id of r share b's memory (the caller owns b, as storage clients
// return copies, and never modifies it), and names (field names,
// partitions) and slices come from in when given, so steady-state decoding
// allocates little.
func (r *Record) UnmarshalShared(b []byte, in *Interner) error {
	d := decoder{b: b, shared: true}
	if in == nil {
		d.shared = false
	}
	if d.byte() != recordVersion {
		return errCorrupt
	}
	flags := d.byte()
	*r = Record{Tombstone: flags&flagTomb != 0, FieldsOK: flags&flagFieldsOK != 0}
	r.Slot = d.uvarint()
	r.LastRun = d.uint64()
	r.DeletedRun = d.uint64()
	r.RecordID = d.string()
	r.Partition = in.string(d.bytes())
	r.RecHash = d.copyBytes()
	if flags&flagCmp != 0 {
		r.CmpHash = d.copyN(32)
	}
	if n := d.count(); n > 0 {
		r.Fields = takeIn(in, fieldsOf, n)
		for i := range r.Fields {
			r.Fields[i] = FieldSum{Name: in.name(i, d.bytes()), Sum: d.uint64()}
		}
	}
	if flags&flagOld != 0 {
		r.Old = d.copyBytes()
	}
	if n := d.count(); n > 0 {
		r.Memo = takeIn(in, memosOf, n)
		for i := range r.Memo {
			m := &r.Memo[i]
			copy(m.Event[:], d.n(16))
			m.Run = d.uint64()
			m.Change = Change(d.byte())
			m.PrevHash = d.copyBytes()
			if k := d.count(); k > 0 {
				m.Fields = takeIn(in, namesOf, k)
				for j := range m.Fields {
					m.Fields[j] = in.string(d.bytes())
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
// It reuses r.Memo's array (a decoded record owns it).
func (r *Record) PushMemo(m Memo, depth int) {
	keep := r.Memo[:0]
	for _, o := range r.Memo {
		if len(keep) >= depth-1 {
			break
		}
		if o.Run == m.Run {
			keep = append(keep, o)
		}
	}
	if len(keep) < cap(keep) {
		keep = keep[:len(keep)+1]
		copy(keep[1:], keep[:len(keep)-1])
		keep[0] = m
		r.Memo = keep
		return
	}
	out := make([]Memo, 1, depth)
	out[0] = m
	r.Memo = append(out, keep...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decoder reads the binary form; any overrun sets err instead of panicking.
type decoder struct {
	b      []byte
	err    bool
	shared bool // byte slices may share b
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

// string reads a string; shared, it shares b's memory like the byte slices
// (b is never modified: UnmarshalShared's contract), saving an allocation
// per record.
func (d *decoder) string() string {
	b := d.bytes()
	if d.shared && len(b) > 0 {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

func (d *decoder) copyN(k int) []byte {
	b := d.n(k)
	if b == nil {
		return nil
	}
	if d.shared {
		return b[:len(b):len(b)]
	}
	return append([]byte(nil), b...)
}

// Interner hands out one string per distinct name, so decoding the same
// field names for every record does not allocate them again, and it hands
// out the slices of decoded records from shared arrays (one allocation for
// many records). It is not safe for concurrent use.
type Interner struct {
	m      map[string]string
	recent []string // field names of the last record decoded, by position: a cheap first guess
	slab   Slabs
	batch  *Slabs // UseSlabs
}

// Slabs are the arrays decoded records take their slices from. Give a
// Slabs to UseSlabs while decoding the records of one incoming batch, and
// Reset it once nothing references those records any more: then steady
// state decoding allocates nothing.
type Slabs struct {
	fields []FieldSum
	memos  []Memo
	names  []string
}

// Reset zeroes the elements handed out, making them available again.
func (s *Slabs) Reset() {
	clear(s.fields)
	clear(s.memos)
	clear(s.names)
	s.fields, s.memos, s.names = s.fields[:0], s.memos[:0], s.names[:0]
}

// UseSlabs makes decoding take slices from s (nil: from the Interner's own
// arrays, which are never reused).
func (in *Interner) UseSlabs(s *Slabs) { in.batch = s }

func fieldsOf(s *Slabs) *[]FieldSum { return &s.fields }
func memosOf(s *Slabs) *[]Memo      { return &s.memos }
func namesOf(s *Slabs) *[]string    { return &s.names }

// takeIn returns n zeroed elements for a decoded record: new without an
// Interner, from the batch's Slabs (grown as needed, reused after Reset),
// or from the Interner's own arrays (Take).
func takeIn[T any](in *Interner, of func(*Slabs) *[]T, n int) []T {
	switch {
	case in == nil:
		return make([]T, n)
	case in.batch != nil:
		slab := of(in.batch)
		s := *slab
		if len(s)+n > cap(s) {
			s = make([]T, 0, max(2*cap(s), n, slabLen))
		}
		out := s[len(s) : len(s)+n : len(s)+n]
		*slab = s[:len(s)+n]
		return out
	}
	return Take(of(&in.slab), n)
}

// name interns the name of field i of a record: records of a dataset
// usually have the same fields as the record decoded before.
func (in *Interner) name(i int, b []byte) string {
	if in == nil {
		return string(b)
	}
	if i < len(in.recent) && in.recent[i] == string(b) {
		return in.recent[i]
	}
	s := in.string(b)
	if i < len(in.recent) {
		in.recent[i] = s
	} else if i == len(in.recent) && i < 64 {
		in.recent = append(in.recent, s)
	}
	return s
}

const slabLen = 4096

// Take returns a zeroed slice of n elements from *slab (capped, so appends
// never reach a neighbour), or a new one when slab is nil. Elements are
// handed out once; a full slab is replaced, not reused.
func Take[T any](slab *[]T, n int) []T {
	if slab == nil || n > slabLen/4 {
		return make([]T, n)
	}
	if len(*slab)+n > cap(*slab) {
		*slab = make([]T, 0, slabLen)
	}
	s := *slab
	out := s[len(s) : len(s)+n : len(s)+n]
	*slab = s[:len(s)+n]
	return out
}

const internMax = 4096 // names are few; the bound only guards against unusual data

func (in *Interner) string(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= internMax {
		in.m = make(map[string]string)
	}
	s := string(b)
	in.m[s] = s
	return s
}

func (d *decoder) copyBytes() []byte {
	k := d.count()
	if k == 0 {
		return nil
	}
	return d.copyN(k)
}

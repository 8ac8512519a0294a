package cdcprocessor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// recordEnc serializes a record's data once, straight from pdata: the
// canonical JSON of an object is "{" + its `"key":value` members sorted by
// key + "}", and a per-field hash (canonical.FieldHasher) is the hash of one
// such member. So the members are encoded once and reused for the compared
// hash, the full record hash, the per-field hashes and the record key,
// without building a map[string]any of the record. The results equal
// canonical.Hash and canonical.FieldHasher (encode_test.go checks this).
// Per-field hashes are computed later (fieldHasher), under the state lock,
// because an unchanged record needs only one of them.
type recordEnc struct {
	buf    []byte // members, back to back
	out    []byte // assembled object
	fields []member
	tmp    []member // sorting scratch
	order  []int32  // sorting scratch
}

// member is one top-level field: buf[start:end] is `"key":value`, the
// value starts at val.
type member struct {
	name       string
	value      pcommon.Value
	start, val int
	end        int
	proj       bool // part of the compared (projected) record
	bad        bool // not encodable canonically
}

// encode serializes the members of m and marks those d compares.
func (r *recordEnc) encode(m pcommon.Map, d *dataset) {
	r.buf, r.fields = r.buf[:0], r.fields[:0]
	sorted, ascii := true, true
	for k, v := range m.All() {
		f := member{name: k, value: v, start: len(r.buf), proj: d.compares(k)}
		var err error
		if simpleString(k) {
			r.buf = append(r.buf, '"')
			r.buf = append(r.buf, k...)
			r.buf = append(r.buf, '"')
		} else {
			ascii = ascii && asciiOnly(k)
			r.buf, err = canonical.AppendJSON(r.buf, k)
		}
		r.buf = append(r.buf, ':')
		f.val = len(r.buf)
		if err == nil {
			r.buf, err = appendValue(r.buf, v)
		}
		f.end, f.bad = len(r.buf), err != nil
		if n := len(r.fields); n > 0 && r.fields[n-1].name >= k {
			sorted = false
		}
		r.fields = append(r.fields, f)
	}
	if sorted && ascii {
		return
	}
	// Sort an index rather than the members (smaller moves, no write
	// barriers), then put the members in that order.
	r.order = r.order[:0]
	for i := range r.fields {
		r.order = append(r.order, int32(i))
	}
	cmp := func(a, b int32) int { return strings.Compare(r.fields[a].name, r.fields[b].name) }
	if !ascii {
		cmp = func(a, b int32) int { return compareUTF16(r.fields[a].name, r.fields[b].name) }
	}
	slices.SortStableFunc(r.order, cmp)
	r.tmp = r.tmp[:0]
	for n, i := range r.order {
		// A map with a key twice (possible on the wire) reads as its last
		// value; the stable sort keeps the last one last.
		if n+1 < len(r.order) && r.fields[r.order[n+1]].name == r.fields[i].name {
			continue
		}
		r.tmp = append(r.tmp, r.fields[i])
	}
	r.fields, r.tmp = r.tmp, r.fields
}

// release drops the references to the last record (its pdata) so a pooled
// encoder does not keep an old batch alive.
func (r *recordEnc) release() {
	clear(r.fields[:cap(r.fields)])
	clear(r.tmp[:cap(r.tmp)])
	r.fields, r.tmp = r.fields[:0], r.tmp[:0]
}

// hash returns the SHA-256 of the canonical JSON of the members selected by
// proj (all when all), or false when one of them is not encodable.
func (r *recordEnc) hash(all bool) ([32]byte, bool) {
	r.out = append(r.out[:0], '{')
	for i := range r.fields {
		f := &r.fields[i]
		if !all && !f.proj {
			continue
		}
		if f.bad {
			return [32]byte{}, false
		}
		if len(r.out) > 1 {
			r.out = append(r.out, ',')
		}
		r.out = append(r.out, r.buf[f.start:f.end]...)
	}
	r.out = append(r.out, '}')
	return sha256.Sum256(r.out), true
}

// compared returns the compared members for later hashing (fieldHasher):
// fields holds their names (sorted by bytes, as the state keeps them; sums
// not yet filled in), pairs their encodings back to back, and ends[i] the
// end of field i's encoding in pairs. ok is false when one is not
// encodable. Slices come from s.
func (r *recordEnc) compared(s *prepSlab) (fields []state.FieldSum, pairs []byte, ends []int32, ok bool) {
	n, size := 0, 0
	for i := range r.fields {
		if f := &r.fields[i]; f.proj {
			if f.bad {
				return nil, nil, nil, false
			}
			n++
			size += f.end - f.start
		}
	}
	fields = takeFrom(&s.fields, n)[:0] // never nil: record data without compared fields is still record data
	ends = takeFrom(&s.ends, n)[:0]
	pairs = s.bytes(size)
	for i := range r.fields {
		if f := &r.fields[i]; f.proj {
			pairs = append(pairs, r.buf[f.start:f.end]...)
			fields = append(fields, state.FieldSum{Name: f.name})
			ends = append(ends, int32(len(pairs)))
		}
	}
	// canonical JSON orders non-ASCII names by UTF-16, which can differ
	// from byte order: reorder the (rare) unsorted case.
	if !slices.IsSortedFunc(fields, fieldOrder) {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(fields[a].Name, fields[b].Name) })
		f2, p2, e2 := make([]state.FieldSum, 0, n), make([]byte, 0, len(pairs)), make([]int32, 0, n)
		for _, i := range idx {
			start := int32(0)
			if i > 0 {
				start = ends[i-1]
			}
			p2 = append(p2, pairs[start:ends[i]]...)
			f2 = append(f2, fields[i])
			e2 = append(e2, int32(len(p2)))
		}
		fields, pairs, ends = f2, p2, e2
	}
	return fields, pairs, ends, true
}

func fieldOrder(a, b state.FieldSum) int { return strings.Compare(a.Name, b.Name) }

// prepSlab holds the arrays one incoming batch's items take their slices
// from (a few allocations per batch instead of several per event). It is
// part of the pooled batchBuf: reset clears it for the next batch, and once
// its arrays have grown to a batch's size, a batch allocates nothing here.
type prepSlab struct {
	fields []state.FieldSum
	ends   []int32
	b      []byte
}

// takeFrom returns n zeroed elements from *slab (capped, so appends never
// reach a neighbour). A full slab is replaced by one twice as large; slices
// already handed out keep the old array.
func takeFrom[T any](slab *[]T, n int) []T {
	s := *slab
	if len(s)+n > cap(s) {
		s = make([]T, 0, max(2*cap(s), n, 1024))
	}
	out := s[len(s) : len(s)+n : len(s)+n]
	*slab = s[:len(s)+n]
	return out
}

// bytes returns an empty slice with capacity n from the slab.
func (s *prepSlab) bytes(n int) []byte { return takeFrom(&s.b, n)[:0] }

// reset makes the slab's current arrays available again (zeroed, as
// takeFrom hands them out).
func (s *prepSlab) reset() {
	clear(s.fields)
	s.fields, s.ends, s.b = s.fields[:0], s.ends[:0], s.b[:0]
}

// fieldHasher computes the per-field hashes of the state: the hash of a
// member's `"name":value` encoding, which is what canonical.FieldHasher
// hashes.
type fieldHasher struct {
	mac hash.Hash // HMAC-SHA256 with field_hash_key, else SHA-256
	buf []byte
}

func newFieldHasher(key []byte) *fieldHasher {
	if key != nil {
		return &fieldHasher{mac: hmac.New(sha256.New, key)}
	}
	return &fieldHasher{mac: sha256.New()}
}

// sum returns the state's truncated hash of field i of pairs.
func (h *fieldHasher) sum(pairs []byte, ends []int32, i int) uint64 {
	start := int32(0)
	if i > 0 {
		start = ends[i-1]
	}
	h.mac.Reset()
	h.mac.Write(pairs[start:ends[i]])
	h.buf = h.mac.Sum(h.buf[:0])
	return binary.LittleEndian.Uint64(h.buf)
}

// sumAll fills in the sums of fields.
func (h *fieldHasher) sumAll(fields []state.FieldSum, pairs []byte, ends []int32) {
	for i := range fields {
		fields[i].Sum = h.sum(pairs, ends, i)
	}
}

// find returns the member named name.
func (r *recordEnc) find(name string) *member {
	for i := range r.fields {
		if r.fields[i].name == name {
			return &r.fields[i]
		}
	}
	return nil
}

// key is the record key from the key fields' values: one field gives its
// value as text, several the canonical JSON array of the values. ok is
// false when a key field is missing.
func (r *recordEnc) key(names []string) (key string, ok bool, err error) {
	if len(names) == 1 {
		f := r.find(names[0])
		switch {
		case f == nil:
			return "", false, nil
		case f.value.Type() == pcommon.ValueTypeStr:
			return f.value.Str(), true, nil
		case f.bad:
			return "", true, errUnhashable
		}
		return string(r.buf[f.val:f.end]), true, nil
	}
	r.out = append(r.out[:0], '[')
	for i, n := range names {
		f := r.find(n)
		if f == nil {
			return "", false, nil
		}
		if f.bad {
			return "", true, errUnhashable
		}
		if i > 0 {
			r.out = append(r.out, ',')
		}
		r.out = append(r.out, r.buf[f.val:f.end]...)
	}
	r.out = append(r.out, ']')
	return string(r.out), true, nil
}

// appendValue appends the canonical JSON of v: scalars directly (the common
// case, without boxing them), anything else through canonical.AppendJSON of
// the value pdata's AsRaw gives (what auditevent.FromLogRecord stores).
func appendValue(dst []byte, v pcommon.Value) ([]byte, error) {
	switch v.Type() {
	case pcommon.ValueTypeEmpty:
		return append(dst, "null"...), nil
	case pcommon.ValueTypeBool:
		return strconv.AppendBool(dst, v.Bool()), nil
	case pcommon.ValueTypeStr:
		if s := v.Str(); simpleString(s) {
			dst = append(dst, '"')
			dst = append(dst, s...)
			return append(dst, '"'), nil
		}
		return canonical.AppendJSON(dst, v.Str())
	case pcommon.ValueTypeInt:
		if i := v.Int(); i <= 1<<53 && i >= -(1<<53) {
			return strconv.AppendInt(dst, i, 10), nil
		}
		return canonical.AppendJSON(dst, v.Int())
	case pcommon.ValueTypeDouble:
		// Integral values in the exact range print as integers in
		// ECMAScript (RFC 8785 §3.2.2.3); -0 prints as 0 either way.
		if f := v.Double(); f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.AppendInt(dst, int64(f), 10), nil
		}
		return canonical.AppendJSON(dst, v.Double())
	}
	return canonical.AppendJSON(dst, v.AsRaw())
}

// simpleString reports whether s is printable ASCII without '"' or '\',
// so its canonical JSON is s in quotes.
func simpleString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func asciiOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// compareUTF16 orders keys by UTF-16 code units as RFC 8785 §3.2.3 requires
// (only needed for non-ASCII keys).
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

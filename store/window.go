package store

import (
	"hash/maphash"
	"math"
)

// window remembers the keys of a stream's recent entries approximately, so
// that a backend without cheap lookups (Elasticsearch) is asked only about
// keys that may be stored: a redelivery of a recent entry is then resolved
// before it takes a number. It is two Bloom filters: keys go into the
// current one; when it holds half the capacity it becomes the previous one
// and the oldest half is forgotten. False positives cost a lookup, never a
// wrong outcome.
type window struct {
	seed      maphash.Seed
	half      int
	cur, prev bloom
}

type bloom struct {
	bits []uint64
	k    int
	n    int
}

// falsePositive is each filter's false positive rate. A write of ten
// thousand new keys then finds none that may be stored four times out of
// five, and needs no lookup at all (at 1% every write needed one, of about
// 200 keys); it costs about 3 bytes per key.
const falsePositive = 1e-5

// newWindow returns a window for about capacity keys.
func newWindow(capacity int) *window {
	half := max(capacity/2, 1024)
	return &window{seed: maphash.MakeSeed(), half: half, cur: newBloom(half), prev: newBloom(half)}
}

func newBloom(n int) bloom {
	// m = -n ln p / (ln 2)^2 bits, k = m/n ln 2 hashes.
	m := int(math.Ceil(-float64(n) * math.Log(falsePositive) / (math.Ln2 * math.Ln2)))
	k := max(1, int(math.Round(float64(m)/float64(n)*math.Ln2)))
	return bloom{bits: make([]uint64, (m+63)/64), k: k}
}

func (w *window) hashes(key Key) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(w.seed)
	if key.DeadLetter {
		h.WriteByte(1)
	} else {
		h.WriteByte(0)
	}
	h.WriteString(key.ID)
	h.WriteByte(0)
	h.WriteString(key.DocHash)
	a := h.Sum64()
	h.WriteByte(0xff)
	return a, h.Sum64() | 1
}

// add remembers key.
func (w *window) add(key Key) {
	if w.cur.n >= w.half {
		w.prev, w.cur = w.cur, w.prev
		clear(w.cur.bits)
		w.cur.n = 0
	}
	a, b := w.hashes(key)
	w.cur.set(a, b)
}

// mayHold reports whether key may have been added (false: certainly not,
// within the window).
func (w *window) mayHold(key Key) bool {
	a, b := w.hashes(key)
	return w.cur.test(a, b) || w.prev.test(a, b)
}

func (f *bloom) set(a, b uint64) {
	m := uint64(len(f.bits) * 64)
	for i := range f.k {
		bit := (a + uint64(i)*b) % m
		f.bits[bit/64] |= 1 << (bit % 64)
	}
	f.n++
}

func (f *bloom) test(a, b uint64) bool {
	m := uint64(len(f.bits) * 64)
	for i := range f.k {
		bit := (a + uint64(i)*b) % m
		if f.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

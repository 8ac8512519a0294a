package tracker

import (
	"encoding/binary"
	"errors"
)

// Segments are stored in a compact binary form: they are written on every
// spill and checkpoint, so JSON would dominate the cost. Version 2 added the
// write hash and the pending writes of a body, version 3 the job's own form
// of replaced hashes; older versions are still read.
const segVersion = 3

var errCorrupt = errors.New("lineage segment is corrupt")

type enc struct{ b []byte }

func (e *enc) u(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) s(v string) { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) ss(v []string) {
	e.u(uint64(len(v)))
	for _, x := range v {
		e.s(x)
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) ss() []string {
	n := d.u()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.s()
	}
	return out
}

func (e *enc) hop(h hop) { e.s(h.namespace); e.s(h.name); e.s(h.recordID); e.s(h.hash); e.i(h.time) }

func (d *dec) hop() hop {
	return hop{namespace: d.s(), name: d.s(), recordID: d.s(), hash: d.s(), time: d.i()}
}

// encodeSegment writes every lineage of s: index fields and body.
func encodeSegment(s *segment) []byte {
	e := enc{b: make([]byte, 0, 256*len(s.lineages))}
	e.u(segVersion)
	e.u(uint64(len(s.lineages)))
	for _, l := range s.lineages {
		e.s(l.key)
		e.s(l.recordID)
		if l.hasHash {
			e.u(1)
			e.b = append(e.b, l.hash[:]...)
		} else {
			e.u(0)
		}
		e.u(uint64(l.state))
		e.u(uint64(l.flags))
		e.i(int64(l.src))
		b := l.body
		if b == nil {
			b = &body{truncated: true}
		}
		e.hop(b.source)
		e.s(b.startHash)
		e.u(uint64(len(b.steps)))
		for _, st := range b.steps {
			e.s(st.name)
			e.s(st.typ)
			e.s(st.subtype)
			e.s(st.params)
			e.s(st.inHash)
			e.s(st.outHash)
			e.i(st.seq)
			e.i(st.time)
			if st.multi {
				e.u(1)
			} else {
				e.u(0)
			}
		}
		e.ss(b.parents)
		e.ss(b.unresolved)
		if b.truncated {
			e.u(1)
		} else {
			e.u(0)
		}
		e.s(b.writeHash)
		e.u(uint64(len(b.pending)))
		for _, p := range b.pending {
			e.hop(p)
		}
		e.s(b.startAlt)
		for _, st := range b.steps {
			e.s(st.outAlt)
		}
	}
	return e.b
}

// decodeSegment reads lineages written by encodeSegment.
func decodeSegment(data []byte) ([]*lineage, error) {
	d := dec{b: data}
	v := d.u()
	if d.err == nil && (v < 1 || v > segVersion) {
		return nil, errCorrupt
	}
	n := d.u()
	if d.err != nil || n > uint64(len(data)) {
		return nil, errCorrupt
	}
	out := make([]*lineage, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		l := &lineage{key: d.s(), recordID: d.s()}
		if d.u() == 1 {
			if len(d.b) < 32 {
				return nil, errCorrupt
			}
			copy(l.hash[:], d.b[:32])
			l.hasHash = true
			d.b = d.b[32:]
		}
		l.state = uint8(d.u())
		l.flags = uint8(d.u())
		l.src = int32(d.i())
		b := &body{source: d.hop(), startHash: d.s()}
		ns := d.u()
		if d.err != nil || ns > uint64(len(d.b)) {
			return nil, errCorrupt
		}
		for j := uint64(0); j < ns; j++ {
			st := step{name: d.s(), typ: d.s(), subtype: d.s(), params: d.s(), inHash: d.s(), outHash: d.s(), seq: d.i(), time: d.i()}
			st.multi = d.u() == 1
			b.steps = append(b.steps, st)
		}
		b.parents = d.ss()
		b.unresolved = d.ss()
		b.truncated = d.u() == 1
		if v >= 2 {
			b.writeHash = d.s()
			np := d.u()
			if d.err != nil || np > uint64(len(d.b)) {
				return nil, errCorrupt
			}
			for j := uint64(0); j < np; j++ {
				b.pending = append(b.pending, d.hop())
			}
		}
		if v >= 3 {
			b.startAlt = d.s()
			for j := range b.steps {
				b.steps[j].outAlt = d.s()
			}
		}
		l.body = b
		out = append(out, l)
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

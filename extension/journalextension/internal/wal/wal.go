// Package wal is the journal's append-only log: segment files of framed
// records, appended by one writer goroutine that commits concurrent appends
// together (group commit) and acknowledges each only once it is written (and
// fsynced, when configured). Offsets are byte positions in the logical log,
// so a position names the same record forever, across segments and restarts.
package wal

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// headerLen is the frame of every record: payload length (4 bytes), CRC-32C
// of time and payload (4), append time in Unix nanoseconds (8).
const headerLen = 16

// MaxPayload bounds one record, so a corrupt length can never make a reader
// allocate gigabytes.
const MaxPayload = 1 << 30

const segmentSuffix = ".wal"

var (
	// ErrFull is returned by Append when the records not yet released would
	// exceed Options.MaxBacklog: the caller should refuse the request for now.
	ErrFull = errors.New("journal is full: delivery is behind by more than max_backlog")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("journal is closed")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// Options configure a Log.
type Options struct {
	Dir string
	// SegmentBytes is the size after which the writer starts a new segment.
	SegmentBytes int64
	// Fsync makes every group commit durable against power loss (fdatasync)
	// before it is acknowledged; without it a record survives a crash of the
	// process, not of the machine.
	Fsync bool
	// MaxBacklog bounds the bytes between the release point and the end.
	MaxBacklog int64
	// Now is the clock of append times (time.Now when nil).
	Now func() time.Time
	// OnCommit, when set, observes every group commit: records, bytes, and
	// how long the write (and fsync) took.
	OnCommit func(records, bytes int, d time.Duration)
}

// Record is one entry read back from the log.
type Record struct {
	// Offset is where the record starts, Next where the following one does.
	Offset, Next int64
	// Time is the append time, never earlier than the previous record's.
	Time time.Time
	// Payload is empty for a tick (a record that only carries time). It is
	// valid until the next call of Reader.Next.
	Payload []byte
}

type segment struct {
	base int64
	path string
}

type request struct {
	payload []byte
	done    chan error
}

// Log is an open journal log. Append is safe for concurrent use; there is
// one writer goroutine.
type Log struct {
	opts Options

	end      atomic.Int64 // offset after the last committed record
	released atomic.Int64 // everything before it may be deleted

	mu     sync.Mutex
	segs   []segment // sorted; the last one is written
	signal chan struct{}

	// Writer goroutine state.
	active     *os.File
	activeSize int64
	lastTime   int64
	buf        []byte
	broken     error

	reqs    chan *request
	rotate  chan chan error
	closing chan struct{}
	done    chan struct{}
	closed  atomic.Bool
}

// Open opens (or creates) the log in opts.Dir, cutting a torn last record
// left by a crash; records after the cut were never acknowledged.
func Open(opts Options) (*Log, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	l := &Log{opts: opts, signal: make(chan struct{}), reqs: make(chan *request, 1024),
		rotate: make(chan chan error), closing: make(chan struct{}), done: make(chan struct{})}
	segs, err := listSegments(opts.Dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		segs = []segment{{base: 0, path: segmentPath(opts.Dir, 0)}}
	}
	// Every segment but the last was closed after complete writes, so it
	// ends exactly where the next begins.
	for i := 0; i+1 < len(segs); i++ {
		st, err := os.Stat(segs[i].path)
		if err != nil {
			return nil, err
		}
		if segs[i].base+st.Size() != segs[i+1].base {
			return nil, fmt.Errorf("journal segment %s holds %d bytes but the next segment starts at offset %d: the journal directory was modified",
				segs[i].path, st.Size(), segs[i+1].base)
		}
	}
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	size, lastTime, err := validPrefix(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	l.segs, l.active, l.activeSize, l.lastTime = segs, f, size, lastTime
	l.end.Store(last.base + size)
	l.released.Store(segs[0].base)
	if err := syncDir(opts.Dir); err != nil {
		f.Close()
		return nil, err
	}
	go l.write()
	return l, nil
}

// Start is the offset of the first record still kept.
func (l *Log) Start() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0].base
}

// End is the offset after the last committed record.
func (l *Log) End() int64 { return l.end.Load() }

// Backlog is the number of bytes appended but not yet released.
func (l *Log) Backlog() int64 { return l.end.Load() - l.released.Load() }

// Append commits one record (an empty payload is a tick) and returns once it
// is written, and fsynced when configured. A cancelled ctx stops waiting for
// a place in the queue, not a write already under way.
func (l *Log) Append(ctx context.Context, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("journal record of %d bytes exceeds the limit of %d", len(payload), MaxPayload)
	}
	if l.closed.Load() {
		return ErrClosed
	}
	if l.opts.MaxBacklog > 0 && l.Backlog()+int64(len(payload)+headerLen) > l.opts.MaxBacklog {
		return ErrFull
	}
	req := &request{payload: payload, done: make(chan error, 1)}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.closing:
		return ErrClosed
	}
	return <-req.done
}

// Wait blocks until the log extends beyond pos, ctx is done or d passed; it
// reports whether there is data after pos.
func (l *Log) Wait(ctx context.Context, pos int64, d time.Duration) bool {
	l.mu.Lock()
	sig := l.signal
	l.mu.Unlock()
	if l.end.Load() > pos {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sig:
	case <-t.C:
	case <-ctx.Done():
	}
	return l.end.Load() > pos
}

// Wake ends every Wait in progress, as an append would.
func (l *Log) Wake() {
	l.mu.Lock()
	close(l.signal)
	l.signal = make(chan struct{})
	l.mu.Unlock()
}

// Release declares everything before pos delivered and durable elsewhere:
// whole segments before it are deleted, and when pos is the end the active
// segment is closed and deleted too, so delivered records do not stay on disk.
func (l *Log) Release(pos int64) error {
	if pos > l.end.Load() {
		return fmt.Errorf("journal: release of offset %d beyond the end %d", pos, l.end.Load())
	}
	l.released.Store(pos)
	if pos == l.end.Load() {
		ch := make(chan error, 1)
		select {
		case l.rotate <- ch:
			if err := <-ch; err != nil {
				return err
			}
		case <-l.closing:
		}
	}
	l.mu.Lock()
	var drop []segment
	for len(l.segs) > 1 && l.segs[1].base <= pos {
		drop = append(drop, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	var errs []error
	for _, s := range drop {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the writer after the appends already queued; later appends
// fail with ErrClosed.
func (l *Log) Close() error {
	if l.closed.Swap(true) {
		<-l.done
		return nil
	}
	close(l.closing)
	<-l.done
	return l.active.Close()
}

// write is the writer goroutine: it takes every queued append, writes them
// with one write call (and one fsync), then acknowledges them together.
func (l *Log) write() {
	defer close(l.done)
	batch := make([]*request, 0, 64)
	for {
		batch = batch[:0]
		select {
		case req := <-l.reqs:
			batch = append(batch, req)
		case ch := <-l.rotate:
			ch <- l.rotateIfReleased()
			continue
		case <-l.closing:
			l.failQueued(ErrClosed)
			return
		}
		size := len(batch[0].payload)
	drain:
		for size < 8<<20 && len(batch) < cap(batch) {
			select {
			case req := <-l.reqs:
				batch = append(batch, req)
				size += len(req.payload)
			default:
				break drain
			}
		}
		err := l.commit(batch)
		for _, req := range batch {
			req.done <- err
		}
	}
}

func (l *Log) failQueued(err error) {
	for {
		select {
		case req := <-l.reqs:
			req.done <- err
		default:
			return
		}
	}
}

func (l *Log) commit(batch []*request) error {
	if l.broken != nil {
		return l.broken
	}
	began := time.Now()
	now := l.opts.Now().UnixNano()
	if now < l.lastTime {
		now = l.lastTime // append times never go backwards, whatever the wall clock does
	}
	l.buf = l.buf[:0]
	for _, req := range batch {
		l.buf = appendRecord(l.buf, now, req.payload)
	}
	if l.activeSize > 0 && l.activeSize+int64(len(l.buf)) > l.opts.SegmentBytes {
		if err := l.newSegment(); err != nil {
			return err
		}
	}
	if _, err := l.active.Write(l.buf); err != nil {
		// Cut what may have been written, so no acknowledged record can be
		// followed by garbage; if even that fails, stop accepting appends.
		if terr := l.active.Truncate(l.activeSize); terr != nil {
			l.broken = fmt.Errorf("journal write failed and could not be undone: %w", errors.Join(err, terr))
		} else if _, serr := l.active.Seek(l.activeSize, io.SeekStart); serr != nil {
			l.broken = fmt.Errorf("journal write failed and could not be undone: %w", errors.Join(err, serr))
		}
		return fmt.Errorf("journal write: %w", err)
	}
	if l.opts.Fsync {
		if err := fdatasync(l.active); err != nil {
			// After a failed fsync the page cache state is unknown: refuse
			// everything from now on rather than acknowledge what may be lost.
			l.broken = fmt.Errorf("journal fsync failed: %w", err)
			return l.broken
		}
	}
	l.activeSize += int64(len(l.buf))
	l.lastTime = now
	l.end.Add(int64(len(l.buf)))
	l.mu.Lock()
	close(l.signal)
	l.signal = make(chan struct{})
	l.mu.Unlock()
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(len(batch), len(l.buf), time.Since(began))
	}
	if cap(l.buf) > 16<<20 {
		l.buf = nil
	}
	return nil
}

// rotateIfReleased starts a new segment when everything written so far is
// released, so Release can delete the old one.
func (l *Log) rotateIfReleased() error {
	if l.broken != nil || l.activeSize == 0 || l.released.Load() != l.end.Load() {
		return nil
	}
	return l.newSegment()
}

func (l *Log) newSegment() error {
	base := l.end.Load()
	path := segmentPath(l.opts.Dir, base)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: new segment: %w", err)
	}
	if l.opts.Fsync {
		if err := l.active.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := syncDir(l.opts.Dir); err != nil {
		f.Close()
		return err
	}
	old := l.active
	l.mu.Lock()
	l.segs = append(l.segs, segment{base: base, path: path})
	l.mu.Unlock()
	l.active, l.activeSize = f, 0
	return old.Close()
}

func appendRecord(b []byte, t int64, payload []byte) []byte {
	var h [headerLen]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], uint64(t))
	crc := crc32.Update(0, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	b = append(b, h[:]...)
	return append(b, payload...)
}

// validPrefix returns the length of the longest prefix of f made of whole,
// intact records, and the time of the last one.
func validPrefix(f *os.File) (int64, int64, error) {
	r := &chunkReader{f: f}
	var pos, last int64
	for {
		rec, ok, err := r.read(pos, -1)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return pos, last, nil
		}
		pos, last = rec.Next, rec.Time.UnixNano()
	}
}

// chunkReader reads records from one segment file with large positioned
// reads; positions are relative to the segment.
type chunkReader struct {
	f        *os.File
	buf      []byte
	bufStart int64
}

// read returns the record at pos if one is complete and intact before limit
// (limit < 0: the end of the file).
func (r *chunkReader) read(pos, limit int64) (Record, bool, error) {
	h, err := r.bytes(pos, headerLen, limit)
	if err != nil || h == nil {
		return Record{}, false, err
	}
	n := int64(binary.LittleEndian.Uint32(h[0:4]))
	crc := binary.LittleEndian.Uint32(h[4:8])
	t := int64(binary.LittleEndian.Uint64(h[8:16]))
	if n > MaxPayload {
		return Record{}, false, nil
	}
	all, err := r.bytes(pos, headerLen+int(n), limit)
	if err != nil || all == nil {
		return Record{}, false, err
	}
	payload := all[headerLen:]
	if c := crc32.Update(crc32.Update(0, castagnoli, all[8:16]), castagnoli, payload); c != crc {
		return Record{}, false, nil
	}
	return Record{Offset: pos, Next: pos + headerLen + n, Time: time.Unix(0, t).UTC(), Payload: payload}, true, nil
}

// bytes returns n bytes at pos from the buffer, refilling it as needed; nil
// when fewer than n bytes exist before limit.
func (r *chunkReader) bytes(pos int64, n int, limit int64) ([]byte, error) {
	if limit >= 0 && pos+int64(n) > limit {
		return nil, nil
	}
	if pos >= r.bufStart && pos+int64(n) <= r.bufStart+int64(len(r.buf)) {
		off := pos - r.bufStart
		return r.buf[off : off+int64(n)], nil
	}
	want := max(n, 1<<20)
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	if limit >= 0 && int64(want) > limit-pos {
		r.buf = r.buf[:limit-pos]
	}
	got, err := r.f.ReadAt(r.buf, pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	r.buf, r.bufStart = r.buf[:got], pos
	if got < n {
		return nil, nil
	}
	return r.buf[:n], nil
}

// Reader reads committed records in order from a position.
type Reader struct {
	l   *Log
	pos int64
	seg segment
	cr  *chunkReader
}

// NewReader starts reading at pos, which must be a record boundary at or
// after Start (a checkpointed position always is).
func (l *Log) NewReader(pos int64) (*Reader, error) {
	if pos < l.Start() || pos > l.End() {
		return nil, fmt.Errorf("journal: offset %d is outside the log [%d, %d]", pos, l.Start(), l.End())
	}
	return &Reader{l: l, pos: pos}, nil
}

// Pos is the offset of the next record.
func (r *Reader) Pos() int64 { return r.pos }

// Next returns the next committed record, or ok == false when the reader is
// at the end of what is committed.
func (r *Reader) Next() (Record, bool, error) {
	end := r.l.End()
	if r.pos >= end {
		return Record{}, false, nil
	}
	// The segment holding pos, and where it ends: the next segment's base,
	// or the committed end for the segment being written. Looked up every
	// time, since rotation adds segments and Release removes them.
	seg, limit, ok := r.l.locate(r.pos, end)
	if !ok {
		return Record{}, false, fmt.Errorf("journal: offset %d is no longer kept", r.pos)
	}
	if r.cr == nil || r.seg.base != seg.base {
		if err := r.open(seg); err != nil {
			return Record{}, false, err
		}
	}
	rec, ok, err := r.cr.read(r.pos-seg.base, limit-seg.base)
	if err != nil {
		return Record{}, false, err
	}
	if !ok {
		return Record{}, false, fmt.Errorf("journal: no intact record at offset %d (below the committed end %d): the journal is corrupt", r.pos, end)
	}
	rec.Offset += seg.base
	rec.Next += seg.base
	r.pos = rec.Next
	return rec, true, nil
}

// Close releases the reader's file.
func (r *Reader) Close() error {
	if r.cr == nil {
		return nil
	}
	err := r.cr.f.Close()
	r.cr = nil
	return err
}

func (r *Reader) open(seg segment) error {
	if r.cr != nil {
		r.cr.f.Close()
		r.cr = nil
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return err
	}
	r.seg, r.cr = seg, &chunkReader{f: f}
	return nil
}

// locate returns the segment holding pos and the offset where it ends.
func (l *Log) locate(pos, end int64) (segment, int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, found := slices.BinarySearchFunc(l.segs, pos, func(s segment, p int64) int { return cmp.Compare(s.base, p) })
	if !found {
		i--
	}
	if i < 0 {
		return segment{}, 0, false
	}
	if i+1 < len(l.segs) {
		return l.segs[i], l.segs[i+1].base, true
	}
	return l.segs[i], end, true
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, segmentSuffix))
}

func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || base < 0 {
			return nil, fmt.Errorf("journal: unexpected file %s in %s", name, dir)
		}
		segs = append(segs, segment{base: base, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.base, b.base) })
	return segs, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

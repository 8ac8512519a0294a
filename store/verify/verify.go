// Package verify checks an audit trail as an auditor would, trusting
// nothing the store says about itself: it recomputes every entry's hash from
// its document, every leaf and the Merkle tree of every stream, checks them
// against signed checkpoints (kept with the trail and, better, kept
// elsewhere), checks the indexed copies queries use against the documents,
// and recomputes every run summary from its events. Each problem names its
// kind and, where there is one, the exact sequence. docs/integrity.md lists
// the kinds.
package verify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// Problem kinds.
const (
	// Modified: an entry's content (or its hash) is not what was logged.
	Modified = "modified"
	// Missing: no entry holds this sequence.
	Missing = "missing"
	// Inserted: an entry that was not logged (a second entry under a
	// sequence, or one beyond the final checkpoint).
	Inserted = "inserted"
	// Reordered: the entry is one that was logged under another sequence.
	Reordered = "reordered"
	// Truncated: a signed checkpoint covers entries the store no longer has.
	Truncated = "truncated"
	// Pending: entries after the stored tree on a backend without
	// transactions: a write in progress, or one a crash interrupted, which
	// the collector adopts at its next write (not a failure; signed
	// checkpoints still cover whatever they sign).
	Pending = "pending"
	// Unsigned: entries no checkpoint covers yet (not a failure while the
	// collector runs; after its final checkpoint they are Inserted).
	Unsigned = "unsigned"
	// ForgedCheckpoint: a kept checkpoint whose signature does not verify.
	ForgedCheckpoint = "forged_checkpoint"
	// CheckpointReplaced: a kept checkpoint differs from the one published
	// outside the store for the same size.
	CheckpointReplaced = "checkpoint_replaced"
	// TreeMismatch: the tree recomputed from the entries differs from a
	// signed checkpoint.
	TreeMismatch = "tree_mismatch"
	// HeadDiffers: the stream's stored bookkeeping (size, root) differs
	// from what its entries give.
	HeadDiffers = "head_differs"
	// IndexedDiffers: a column or field queries use differs from the
	// document (an event hidden from, or planted in, search results).
	IndexedDiffers = "indexed_differs"
	// RunSummaryDiffers: a stored run summary differs from its events.
	RunSummaryDiffers = "run_summary_differs"
	// RunNotCompared: a run summary that counts events verification did
	// not read: written after it read their stream (a collector writing
	// the run), or in a stream not verified (not a failure; verify again).
	RunNotCompared = "run_not_compared"
	// BadDocument: a stored document that cannot be read.
	BadDocument = "bad_document"
)

// Problem is one finding of verification.
type Problem struct {
	Stream   string `json:"stream,omitempty"`
	Kind     string `json:"kind"`
	Sequence int64  `json:"sequence,omitempty"`
	Detail   string `json:"detail"`
}

// Failing reports whether the problem means the trail is not intact (an
// Unsigned tail is normal while the collector runs).
func (p Problem) Failing() bool {
	return p.Kind != Unsigned && p.Kind != Pending && p.Kind != RunNotCompared
}

// External is a checkpoint published outside the store (the collector's
// checkpoint file): what makes a rewritten or truncated store detectable.
type External struct {
	Stream string `json:"stream"`
	Note   string `json:"note"`
	// Final marks the checkpoint the collector wrote when it stopped
	// cleanly: nothing may follow it in the store until the next start.
	Final bool `json:"final,omitempty"`
}

// Options configure Verify.
type Options struct {
	// Verifiers check checkpoint signatures; without them checkpoints are
	// not used (hashes, sequences, indexed copies and runs still are).
	Verifiers note.Verifiers
	// External checkpoints, e.g. read from the collector's checkpoint file.
	External []External
	// OriginPrefix: a stream's checkpoints have origin OriginPrefix+stream.
	OriginPrefix string
	// Streams limits verification (empty: every stream).
	Streams []string
	// Progress, when set, is called now and then with entries read.
	Progress func(stream string, entries int64)
}

// StreamSummary describes one verified stream.
type StreamSummary struct {
	Stream      string `json:"stream"`
	Entries     int64  `json:"entries"`
	Events      int64  `json:"events"`
	DeadLetters int64  `json:"dead_letters"`
	Gaps        int64  `json:"gaps"`
	// Size is the tree's size (every place up to the highest stored
	// sequence, pruned and missing ones included) and Root its root.
	Size int64  `json:"size"`
	Root string `json:"root"`
	// Checkpoints is how many signed checkpoints were checked; Covered the
	// size of the largest.
	Checkpoints int   `json:"checkpoints"`
	Covered     int64 `json:"covered"`
	// Pruned, when set, says that entries 1..Pruned.Through were removed by
	// retention: not a problem, since a retention event in the stream
	// records it (see Pruned).
	Pruned *Pruned `json:"pruned,omitempty"`
}

// Pruned is a stream's prefix that retention removed. Its entries' leaves
// come from the stored tiles, and the tree they give is checked against the
// signed checkpoints like any other; the prefix counts as pruned, not
// missing, only up to what a batchaudit.retention.prune event of the stream
// records, and with Verifiers only when a signed checkpoint covers that
// event. A prefix removed without such an event is Missing.
type Pruned struct {
	Through int64 `json:"through"`
	// Sequence and EventID are the retention event's; Cutoff is its cutoff.
	Sequence int64  `json:"sequence"`
	EventID  string `json:"event_id"`
	Cutoff   string `json:"cutoff"`
}

// Report is the result of Verify.
type Report struct {
	Streams  []StreamSummary `json:"streams"`
	Runs     int             `json:"runs"`
	Problems []Problem       `json:"problems"`
}

// OK reports whether nothing failed.
func (r *Report) OK() bool {
	for _, p := range r.Problems {
		if p.Failing() {
			return false
		}
	}
	return true
}

// Store is what verification reads.
type Store interface {
	store.Reader
	store.Integrity
	// LastSequence: how far a stream goes now (run summaries written
	// while verification ran).
	LastSequence(ctx context.Context, stream string) (int64, error)
}

// Verify checks every stream (or opts.Streams) of s and the run summaries.
func Verify(ctx context.Context, s Store, opts Options) (*Report, error) {
	if opts.OriginPrefix == "" {
		opts.OriginPrefix = DefaultOriginPrefix
	}
	streams := opts.Streams
	if len(streams) == 0 {
		var err error
		if streams, err = s.Streams(ctx); err != nil {
			return nil, err
		}
	}
	rep := &Report{}
	runs := map[string]*store.Run{}
	read := map[string]int64{}
	for _, stream := range streams {
		sum, err := verifyStream(ctx, s, stream, opts, runs, &rep.Problems)
		if err != nil {
			return nil, err
		}
		rep.Streams = append(rep.Streams, sum)
		read[stream] = sum.Size
	}
	n, err := checkRuns(ctx, s, runs, read, len(opts.Streams) == 0, &rep.Problems)
	if err != nil {
		return nil, err
	}
	rep.Runs = n
	return rep, nil
}

// DefaultOriginPrefix is the checkpoint origin of stream S: "batchaudit/S".
const DefaultOriginPrefix = "batchaudit/"

// checkpoint is a signed checkpoint being checked.
type checkpoint struct {
	merkle.Checkpoint
	source string // "stored" or "external"
	final  bool
}

// trusted opens the stream's checkpoints: the external ones, and the kept
// ones, each with a verified signature. A kept one that does not verify, or
// that differs from the external one of its size, is a problem.
func trusted(ctx context.Context, s Store, stream string, opts Options, problems *[]Problem) ([]checkpoint, error) {
	if opts.Verifiers == nil {
		return nil, nil
	}
	origin := opts.OriginPrefix + stream
	open := func(text string) (merkle.Checkpoint, error) {
		c, _, err := merkle.Open([]byte(text), opts.Verifiers)
		if err == nil && c.Origin != origin {
			err = fmt.Errorf("origin %q, want %q", c.Origin, origin)
		}
		return c, err
	}
	bySize := map[int64]checkpoint{}
	for _, x := range opts.External {
		if x.Stream != stream {
			continue
		}
		c, err := open(x.Note)
		if err != nil {
			*problems = append(*problems, Problem{Stream: stream, Kind: ForgedCheckpoint,
				Detail: fmt.Sprintf("an external checkpoint does not verify: %v", err)})
			continue
		}
		prev, seen := bySize[c.Size]
		if seen && prev.Root != c.Root {
			*problems = append(*problems, Problem{Stream: stream, Kind: TreeMismatch, Sequence: c.Size,
				Detail: fmt.Sprintf("two external checkpoints of size %d have different roots: the log forked", c.Size)})
		}
		bySize[c.Size] = checkpoint{Checkpoint: c, source: "external", final: x.Final || prev.final}
	}
	kept, err := s.Checkpoints(ctx, stream)
	if err != nil {
		return nil, err
	}
	for _, k := range kept {
		c, err := open(k.Note)
		if err != nil {
			*problems = append(*problems, Problem{Stream: stream, Kind: ForgedCheckpoint, Sequence: k.Size,
				Detail: fmt.Sprintf("the checkpoint kept for size %d does not verify: %v", k.Size, err)})
			continue
		}
		if c.Size != k.Size || hex.EncodeToString(c.Root[:]) != k.Root {
			*problems = append(*problems, Problem{Stream: stream, Kind: CheckpointReplaced, Sequence: k.Size,
				Detail: fmt.Sprintf("the checkpoint kept for size %d signs size %d, root %x", k.Size, c.Size, c.Root)})
			continue
		}
		if x, ok := bySize[c.Size]; ok {
			if x.Root != c.Root {
				*problems = append(*problems, Problem{Stream: stream, Kind: CheckpointReplaced, Sequence: c.Size,
					Detail: fmt.Sprintf("the checkpoint kept for size %d has root %x, the one published has %x", c.Size, c.Root, x.Root)})
			}
			continue
		}
		bySize[c.Size] = checkpoint{Checkpoint: c, source: "stored"}
	}
	out := make([]checkpoint, 0, len(bySize))
	for _, c := range bySize {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	return out, nil
}

// checked is an entry after the parallel part of its checks.
type checked struct {
	e        *store.StoredEntry
	hash     string    // recomputed from the document
	leaf     tlog.Hash // the entry's leaf, with that hash
	stored   tlog.Hash // the leaf the stored tiles log at its sequence
	storedOK bool      // whether they reach it
	ev       *auditevent.Event
	problems []Problem
}

func verifyStream(ctx context.Context, s Store, stream string, opts Options, runs map[string]*store.Run, problems *[]Problem) (StreamSummary, error) {
	sum := StreamSummary{Stream: stream}
	cps, err := trusted(ctx, s, stream, opts, problems)
	if err != nil {
		return sum, err
	}
	head, err := s.Head(ctx, stream)
	if err != nil {
		return sum, err
	}
	leaves := newTileLeaves(head.Tiles)

	// Hashing, parsing and the indexed-copy checks run in parallel, in
	// chunks so the hand-offs cost little per entry; the tree, the order
	// checks and the run folding follow the stream's order. A store that
	// can (store.PartReader) reads the stream with several readers too,
	// part by part; the parts are put back in order here.
	parts, err := openParts(ctx, s, stream)
	if err != nil {
		return sum, err
	}
	defer parts.Close() //nolint:errcheck // ends read transactions; what they read is checked
	const chunkSize = 256
	type job struct {
		c    []checked
		evs  *[chunkSize]auditevent.Event // the parsed events, reused once consumed
		done chan struct{}
		end  bool // the last job of its part
	}
	// Events are large; a chunk's are reused once the in-order part has
	// consumed them (it keeps none: runs and markers copy what they need).
	var evPool sync.Pool
	jobs := make(chan *job, 16)
	// Each reader's jobs, in its order. What they buffer bounds the
	// entries in flight (memory) and lets a reader read its next part
	// while the one before is consumed (a part is 8 jobs, see sqlitestore).
	orders := make([]chan *job, parts.Readers())
	for r := range orders {
		orders[r] = make(chan *job, 32/len(orders))
	}
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for j := range jobs {
				if j.evs, _ = evPool.Get().(*[chunkSize]auditevent.Event); j.evs == nil {
					j.evs = new([chunkSize]auditevent.Event)
				}
				for i := range j.c {
					c := &j.c[i]
					check(c, &j.evs[i])
					// Tiles are read here, in parallel, not in the in-order part.
					c.stored, c.storedOK = leaves.leaf(c.e.Sequence)
					j.c[i].e.Document = nil // not needed beyond here
				}
				close(j.done)
			}
		})
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var readErr error
	var errOnce sync.Once
	var readers sync.WaitGroup
	for r := range orders {
		readers.Go(func() {
			defer close(orders[r])
			j := &job{c: make([]checked, 0, chunkSize), done: make(chan struct{})}
			send := func(end bool) error {
				j.end = end
				if len(j.c) == 0 {
					close(j.done)
				} else {
					select {
					case jobs <- j:
					case <-rctx.Done():
						return rctx.Err()
					}
				}
				select {
				case orders[r] <- j:
				case <-rctx.Done():
					return rctx.Err()
				}
				j = &job{c: make([]checked, 0, chunkSize), done: make(chan struct{})}
				return nil
			}
			// The store's queries get ctx: a cancelable one costs the
			// driver more per row, and rctx only has to end the sends.
			err := parts.Each(ctx, r, func(_ int64, e *store.StoredEntry) error {
				if e == nil {
					return send(true)
				}
				if j.c = append(j.c, checked{e: e}); len(j.c) == chunkSize {
					return send(false)
				}
				return rctx.Err()
			})
			if err != nil {
				errOnce.Do(func() { readErr = err })
				cancel() // the other readers may wait for the consumer, which waits for this one
			}
		})
	}
	go func() {
		readers.Wait()
		close(jobs)
	}()
	st := &streamCheck{stream: stream, leaves: leaves, cps: cps, recomputed: map[int64]leafInfo{},
		hashBad: map[int64]bool{}, expected: 1, runs: runs, sum: &sum, problems: problems, opts: opts}
	// Part p comes from reader p mod readers; a reader that closes its
	// channel at a part's start has no parts left (or failed: readErr).
	for part, ended := 0, true; ended; part++ {
		ended = false
		for j := range orders[part%len(orders)] {
			<-j.done
			for i := range j.c {
				st.consume(&j.c[i])
			}
			if j.evs != nil {
				evPool.Put(j.evs)
			}
			if ended = j.end; ended {
				break
			}
		}
	}
	for _, o := range orders {
		for range o { // what a failed read left
		}
	}
	wg.Wait()
	if readErr != nil {
		return sum, readErr
	}
	tree, cpIdx := &st.tree, st.cpIdx
	sum.Entries = st.sum.Events + st.sum.DeadLetters + st.sum.Gaps
	sum.Size = tree.Size()
	root := tree.Root()
	sum.Root = hex.EncodeToString(root[:])

	st.classify()
	st.judgePrefix()

	// Checkpoints beyond what the store holds: its tail was cut. (The tree
	// has a place for every sequence up to the highest stored, so a
	// deletion in the middle is Missing, not this.)
	for ; cpIdx < len(cps); cpIdx++ {
		c := cps[cpIdx]
		*problems = append(*problems, Problem{Stream: stream, Kind: Truncated, Sequence: tree.Size(),
			Detail: fmt.Sprintf("truncated after size %d: the %s checkpoint of size %d covers entries the store no longer has", tree.Size(), c.source, c.Size)})
	}
	if len(cps) > 0 {
		last := cps[len(cps)-1]
		sum.Checkpoints, sum.Covered = len(cps), last.Size
		if n := tree.Size() - last.Size; n > 0 {
			final := false
			for _, c := range cps {
				final = final || (c.final && c.Size == last.Size)
			}
			if final {
				for seq := last.Size + 1; seq <= tree.Size(); seq++ {
					*problems = append(*problems, Problem{Stream: stream, Kind: Inserted, Sequence: seq,
						Detail: fmt.Sprintf("entry after the collector's final checkpoint (size %d): it was added outside the collector", last.Size)})
				}
			} else {
				*problems = append(*problems, Problem{Stream: stream, Kind: Unsigned, Sequence: last.Size + 1,
					Detail: fmt.Sprintf("%d entries after the latest checkpoint (size %d) are not signed yet", n, last.Size)})
			}
		}
	}
	// The stream's bookkeeping against its entries.
	if head.Root != nil && head.Size == tree.Size() && *head.Root != root {
		*problems = append(*problems, Problem{Stream: stream, Kind: HeadDiffers, Sequence: head.Size,
			Detail: fmt.Sprintf("the stored tree root %x is not the root of the stored entries (%x)", *head.Root, root)})
	}
	n := tree.Size()
	if n > head.Size {
		// Read again: a live collector may have committed them meanwhile.
		now, err := s.Head(ctx, stream)
		if err != nil {
			return sum, err
		}
		switch {
		case now.Size >= n:
		case head.Uncommitted:
			*problems = append(*problems, Problem{Stream: stream, Kind: Pending, Sequence: now.Size + 1,
				Detail: fmt.Sprintf("%d entries after the stored tree (size %d) are not committed yet: a write in progress, or one a crash interrupted, which the collector adopts at its next write", n-now.Size, now.Size)})
		case head.Size != 0:
			*problems = append(*problems, Problem{Stream: stream, Kind: HeadDiffers, Sequence: head.Size,
				Detail: fmt.Sprintf("the stream's stored size is %d, its entries number %d", head.Size, n)})
		}
	} else if head.Size != n {
		*problems = append(*problems, Problem{Stream: stream, Kind: HeadDiffers, Sequence: head.Size,
			Detail: fmt.Sprintf("the stream's stored size is %d, its entries number %d", head.Size, n)})
	}
	return sum, nil
}

// openParts opens the stream's readers: several where the store can.
func openParts(ctx context.Context, s Store, stream string) (store.EntryParts, error) {
	if p, ok := s.(store.PartReader); ok {
		return p.EntryParts(ctx, stream, runtime.GOMAXPROCS(0))
	}
	return oneReader{s, stream}, nil
}

// oneReader reads a stream with EachEntry, as one part.
type oneReader struct {
	s      Store
	stream string
}

func (o oneReader) Readers() int { return 1 }

func (o oneReader) Each(ctx context.Context, _ int, fn func(int64, *store.StoredEntry) error) error {
	if err := o.s.EachEntry(ctx, o.stream, func(e *store.StoredEntry) error { return fn(0, e) }); err != nil {
		return err
	}
	return fn(0, nil)
}

func (o oneReader) Close() error { return nil }

type leafInfo struct {
	kind merkle.Kind
	hash string
}

// streamCheck is the in-order part of verifying a stream.
type streamCheck struct {
	stream     string
	tree       merkle.Builder
	leaves     *tileLeaves
	cps        []checkpoint
	cpIdx      int
	mismatched []int64 // sequences whose leaf differs from the stored tile's
	beyond     []int64 // sequences the stored tiles do not reach (classified only if others moved)
	absent     []int64 // sequences no entry holds
	recomputed map[int64]leafInfo
	hashBad    map[int64]bool // entries already Modified: their document does not hash to their hash
	expected   int64
	runs       map[string]*store.Run
	sum        *StreamSummary
	problems   *[]Problem
	opts       Options
	// prefix is the end of the prefix 1..prefix that holds no entry and
	// whose leaves came from the tiles: pruned or missing, judged at the
	// end by the retention events (markers) found in the stream.
	prefix  int64
	markers []marker
	// matched is the size of the largest signed checkpoint whose root the
	// recomputed tree gave.
	matched int64
}

// marker is a retention event found in the stream.
type marker struct {
	seq, through int64
	id, cutoff   string
}

// consume runs the in-order checks of an entry whose parallel checks are done.
func (st *streamCheck) consume(c *checked) {
	e, stream := c.e, st.stream
	*st.problems = append(*st.problems, c.problems...)
	switch {
	case e.Sequence < st.expected:
		// Every sequence consumed is below expected (it only grows), so
		// this is a sequence seen before or one out of order.
		*st.problems = append(*st.problems, Problem{Stream: stream, Kind: Inserted, Sequence: e.Sequence,
			Detail: fmt.Sprintf("a second entry (%s %s) under sequence %d", e.Kind, e.EventID, e.Sequence)})
		return
	case e.Sequence > st.expected:
		s := st.expected
		if s == 1 {
			// A prefix without entries: what retention leaves. Its leaves
			// come from the tiles (as far as they hold them), so the tree
			// and every checkpoint are still checked; judgePrefix decides
			// whether it was pruned or is missing.
			for ; s < e.Sequence; s++ {
				leaf, ok := st.leaves.leaf(s)
				if !ok {
					break
				}
				st.tree.Append(leaf)
				st.checkpoints()
				st.prefix = s
				if len(st.absent) < classifyLimit {
					st.absent = append(st.absent, s)
				}
			}
		}
		for ; s < e.Sequence; s++ {
			*st.problems = append(*st.problems, Problem{Stream: stream, Kind: Missing, Sequence: s, Detail: "no entry holds this sequence"})
			if len(st.absent) < classifyLimit {
				st.absent = append(st.absent, s)
			}
			// Leaf s of the tree stays a placeholder, so that every later
			// entry keeps its place and the checkpoints are compared at
			// the sizes they sign.
			st.tree.Append(tlog.Hash{})
			st.checkpoints()
		}
	}
	st.expected = e.Sequence + 1
	switch e.Kind {
	case merkle.KindEvent:
		st.sum.Events++
	case merkle.KindDeadLetter:
		st.sum.DeadLetters++
	case merkle.KindGap:
		st.sum.Gaps++
	}
	leaf := c.leaf
	if c.hash != e.Hash {
		st.hashBad[e.Sequence] = true
	}
	stored, ok := c.stored, c.storedOK
	switch {
	case ok && stored != leaf:
		st.mismatched = append(st.mismatched, e.Sequence)
		st.recomputed[e.Sequence] = leafInfo{e.Kind, c.hash}
	case !ok && len(st.beyond) < classifyLimit:
		st.beyond = append(st.beyond, e.Sequence)
		st.recomputed[e.Sequence] = leafInfo{e.Kind, c.hash}
	}
	st.tree.Append(leaf)
	st.checkpoints()
	if r := c.ev; r != nil && r.Name == auditevent.RetentionPrune && r.Retention.ThroughSequence != nil && len(c.problems) == 0 {
		st.markers = append(st.markers, marker{seq: e.Sequence, through: *r.Retention.ThroughSequence, id: r.ID, cutoff: r.Retention.Cutoff})
	}
	if c.ev != nil && c.ev.BatchID != "" {
		r := st.runs[c.ev.BatchID]
		if r == nil {
			r = &store.Run{}
			st.runs[c.ev.BatchID] = r
		}
		// As the collector folds (consume sees each sequence once, in
		// order), Through included: a stored summary equal to this one in
		// every byte needs no decoding (checkRuns).
		store.FoldOnce(r, stream, e.Sequence, c.ev)
	}
}

// judgePrefix reports the absent prefix 1..prefix as pruned as far as a
// trusted retention event records it, and the rest as missing. A retention
// event is trusted when its entry verified (hash, leaf) and, with
// Verifiers, when a signed checkpoint whose root the tree gave covers it:
// a prune nobody recorded, or recorded only by an entry that was never
// signed, stays a failure.
func (st *streamCheck) judgePrefix() {
	if st.prefix == 0 {
		return
	}
	var best *marker
	var unsigned *marker
	for i := range st.markers {
		m := &st.markers[i]
		if slices.Contains(st.mismatched, m.seq) {
			continue
		}
		if st.opts.Verifiers != nil && m.seq > st.matched {
			unsigned = m
			continue
		}
		if best == nil || m.through > best.through {
			best = m
		}
	}
	from := int64(1)
	if best != nil {
		p := &Pruned{Through: min(best.through, st.prefix), Sequence: best.seq, EventID: best.id, Cutoff: best.cutoff}
		st.sum.Pruned = p
		from = p.Through + 1
	}
	detail := "no entry holds this sequence"
	switch {
	case best != nil:
		detail += fmt.Sprintf("; the stream's retention event at #%d records entries up to #%d as pruned", best.seq, best.through)
	case unsigned != nil:
		detail += fmt.Sprintf("; the retention event at #%d that records a prune is not covered by a signed checkpoint", unsigned.seq)
	}
	for s := from; s <= st.prefix; s++ {
		*st.problems = append(*st.problems, Problem{Stream: st.stream, Kind: Missing, Sequence: s, Detail: detail})
	}
}

// checkpoints compares the tree with the checkpoints of its size (after
// each leaf appended) and reports progress.
func (st *streamCheck) checkpoints() {
	for st.cpIdx < len(st.cps) && st.cps[st.cpIdx].Size <= st.tree.Size() {
		cp := st.cps[st.cpIdx]
		if cp.Size == st.tree.Size() {
			if cp.Root != st.tree.Root() {
				*st.problems = append(*st.problems, Problem{Stream: st.stream, Kind: TreeMismatch, Sequence: cp.Size,
					Detail: fmt.Sprintf("the entries up to size %d do not give the root the %s checkpoint signed", cp.Size, cp.source)})
			} else {
				st.matched = cp.Size
			}
		}
		st.cpIdx++
	}
	if st.opts.Progress != nil && st.tree.Size()%100_000 == 0 {
		st.opts.Progress(st.stream, st.tree.Size())
	}
}

// check recomputes an entry's hash from its document, parses an event
// (into ev) and compares the indexed copies.
func check(c *checked, ev *auditevent.Event) {
	e := c.e
	sum := sha256.Sum256(e.Document)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	hash := e.Hash // the same string when it matches, without allocating one
	var problems []Problem
	if string(hexSum[:]) != e.Hash {
		hash = string(hexSum[:])
		problems = append(problems, Problem{Stream: e.Stream, Kind: Modified, Sequence: e.Sequence,
			Detail: fmt.Sprintf("the %s's document hashes to %s, its stored hash is %s", e.Kind, hash, e.Hash)})
	}
	if e.Kind == merkle.KindEvent {
		var err error
		if e.Indexed != nil && e.IndexedKeys == nil {
			*ev, err = auditevent.ParseCanonical(e.Document)
		} else {
			err = auditevent.ParseSelected(e.Document, keysFor(e.IndexedKeys), ev)
		}
		if err != nil {
			problems = append(problems, Problem{Stream: e.Stream, Kind: BadDocument, Sequence: e.Sequence, Detail: err.Error()})
		} else {
			c.ev = ev
			if e.Indexed != nil {
				for _, d := range e.Indexed(ev) {
					problems = append(problems, Problem{Stream: e.Stream, Kind: IndexedDiffers, Sequence: e.Sequence, Detail: d})
				}
			}
		}
	}
	if !e.Kind.Valid() {
		problems = append(problems, Problem{Stream: e.Stream, Kind: BadDocument, Sequence: e.Sequence, Detail: fmt.Sprintf("unknown entry kind %q", e.Kind)})
	}
	c.problems = problems
	c.hash = hash
	// Hashed here, in parallel; consume only appends it to the tree.
	c.leaf = merkle.LeafHash(e.Stream, e.Sequence, e.Kind, hash)
}

// ownKeys are the attributes verification reads itself: the run folding's
// and a retention event's (see consume).
var ownKeys = store.RunKeys.Union(auditevent.Select(auditevent.AttrEventID, auditevent.AttrPruneThrough, auditevent.AttrPruneCutoff))

// keysByIndexed caches ownKeys with each backend's IndexedKeys.
var keysByIndexed sync.Map // *auditevent.Selection -> auditevent.Selection

// keysFor returns the attributes to parse for an entry whose Indexed reads
// indexed (nil: no Indexed).
func keysFor(indexed *auditevent.Selection) auditevent.Selection {
	if indexed == nil {
		return ownKeys
	}
	if k, ok := keysByIndexed.Load(indexed); ok {
		return k.(auditevent.Selection)
	}
	k := ownKeys.Union(*indexed)
	keysByIndexed.Store(indexed, k)
	return k
}

// classifyLimit bounds the entries compared with every other misplaced
// one (a quadratic search); beyond it only nearby places are tried, which
// still finds shifted (renumbered) and adjacent swapped entries.
const classifyLimit = 4096

// classify names what happened at each sequence whose entry is not the
// one the stored tiles log there: the entry was logged under another
// sequence (Reordered: swapped or renumbered), it was never logged but the
// entry logged here was moved on (Inserted), or it replaced the logged one
// (Modified). A logged entry that moved nowhere while its place was taken
// by a moved one is Missing (a deletion closed up by renumbering).
func (st *streamCheck) classify() {
	if len(st.mismatched) == 0 {
		return
	}
	stream, problems := st.stream, st.problems
	// matches reports whether the entry stored at p is the one logged at q.
	matches := func(p, q int64) bool {
		if q < 1 || q == p {
			return false
		}
		stored, ok := st.leaves.leaf(q)
		info := st.recomputed[p]
		return ok && stored == merkle.LeafHash(stream, q, info.kind, info.hash)
	}
	var pool []int64 // far places tried for every misplaced entry
	if len(st.mismatched)+len(st.absent) <= classifyLimit {
		pool = append(slices.Clone(st.mismatched), st.absent...)
	}
	home := map[int64]int64{}   // stored sequence -> the sequence it was logged at
	homeOf := map[int64]int64{} // logged sequence -> the sequence it is stored at now
	var delta int64             // the last shift found: renumbering shifts runs of entries alike
	find := func(p int64, far bool) {
		near := []int64{p - 1, p + 1, p - 2, p + 2}
		if delta != 0 {
			near = append([]int64{p + delta}, near...)
		}
		if far {
			near = append(near, pool...)
		}
		for _, q := range near {
			if matches(p, q) {
				home[p], homeOf[q], delta = q, p, q-p
				return
			}
		}
	}
	for _, p := range st.mismatched {
		find(p, true)
	}
	for _, p := range st.beyond {
		find(p, false)
	}
	for _, p := range st.mismatched {
		h, moved := home[p]
		switch {
		case moved:
			*problems = append(*problems, Problem{Stream: stream, Kind: Reordered, Sequence: p,
				Detail: fmt.Sprintf("the entry at sequence %d was logged at sequence %d", p, h)})
		case homeOf[p] != 0:
			*problems = append(*problems, Problem{Stream: stream, Kind: Inserted, Sequence: p,
				Detail: fmt.Sprintf("the entry at sequence %d was never logged; the entry logged here is stored at sequence %d", p, homeOf[p])})
		case st.hashBad[p]:
			// Already Modified: its document does not hash to its hash.
		default:
			*problems = append(*problems, Problem{Stream: stream, Kind: Modified, Sequence: p,
				Detail: "the entry differs from the one logged at this sequence (its leaf is not the stored tile's)"})
		}
	}
	for _, p := range st.beyond {
		if h, moved := home[p]; moved {
			*problems = append(*problems, Problem{Stream: stream, Kind: Reordered, Sequence: p,
				Detail: fmt.Sprintf("the entry at sequence %d was logged at sequence %d", p, h)})
		}
	}
	for _, p := range st.mismatched {
		if _, moved := home[p]; moved && homeOf[p] == 0 {
			*problems = append(*problems, Problem{Stream: stream, Kind: Missing, Sequence: p,
				Detail: fmt.Sprintf("the entry logged at sequence %d is stored nowhere; the entries after it were renumbered", p)})
		}
	}
}

// tileLeaves reads the leaf hashes the stored tiles hold. It trusts no
// stored size (the stream's counter may be altered too): each tile is read
// at the widest width stored.
type tileLeaves struct {
	mu    sync.Mutex // guards cache and order: the parallel checks and the in-order part read tiles
	r     tlog.TileReader
	cache map[int64][]byte // tile index -> its hashes (nil: no tile stored)
	order []int64          // cached tiles, oldest first
}

func newTileLeaves(r tlog.TileReader) *tileLeaves {
	return &tileLeaves{r: r, cache: map[int64][]byte{}}
}

func (t *tileLeaves) leaf(seq int64) (tlog.Hash, bool) {
	i := seq - 1
	if t.r == nil || i < 0 {
		return tlog.Hash{}, false
	}
	n, k := i>>merkle.TileHeight, i&(1<<merkle.TileHeight-1)
	t.mu.Lock()
	data, ok := t.cache[n]
	t.mu.Unlock()
	if !ok {
		// Read without the lock: a read takes ≈0.1 ms, in which the other
		// workers go on with their own tiles (rarely the same one; then
		// both read it, alike).
		data = t.read(n)
		t.mu.Lock()
		if _, ok := t.cache[n]; !ok {
			if len(t.order) == 64 {
				delete(t.cache, t.order[0])
				t.order = t.order[1:]
			}
			t.cache[n], t.order = data, append(t.order, n)
		}
		t.mu.Unlock()
	}
	var h tlog.Hash
	if (k+1)*tlog.HashSize > int64(len(data)) {
		return h, false
	}
	copy(h[:], data[k*tlog.HashSize:])
	return h, true
}

// read returns the widest stored version of level-0 tile n: a full tile,
// or the partial one found by bisection (the stores serve a narrower
// width from a wider tile and fail a wider one).
func (t *tileLeaves) read(n int64) []byte {
	try := func(w int) []byte {
		d, err := t.r.ReadTiles([]tlog.Tile{{H: merkle.TileHeight, L: 0, N: n, W: w}})
		if err != nil || len(d) != 1 || len(d[0]) != w*tlog.HashSize {
			return nil
		}
		return d[0]
	}
	if d := try(1 << merkle.TileHeight); d != nil {
		return d
	}
	var best []byte
	lo, hi := 0, 1<<merkle.TileHeight-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if d := try(mid); d != nil {
			lo, best = mid, d
		} else {
			hi = mid - 1
		}
	}
	return best
}

// checkRuns compares every stored run summary with the one recomputed from
// its events, field by field; read is how far each verified stream was read.
func checkRuns(ctx context.Context, s Store, runs map[string]*store.Run, read map[string]int64, all bool, problems *[]Problem) (int, error) {
	n := 0
	// A stored summary that is, byte for byte, the encoding of the one
	// recomputed (with its Through) decodes to it. runs is only read while
	// known runs, on the store's goroutines.
	known := func(summary []byte) *store.Run {
		const prefix = `{"batch_id":"`
		if !bytes.HasPrefix(summary, []byte(prefix)) {
			return nil
		}
		id, _, _ := bytes.Cut(summary[len(prefix):], []byte(`"`))
		want := runs[string(id)] // any id found this way: equality decides
		if want == nil {
			return nil
		}
		if enc, err := json.Marshal(want); err != nil || !bytes.Equal(enc, summary) {
			return nil
		}
		return want
	}
	seen := map[string]bool{}
	err := s.EachRunSummary(ctx, known, func(stored *store.Run, indexed []string) error {
		n++
		for _, d := range indexed {
			*problems = append(*problems, Problem{Kind: RunSummaryDiffers, Detail: fmt.Sprintf("run %s: %s", stored.BatchID, d)})
		}
		unread, err := beyondRead(ctx, s, stored, read)
		if err != nil {
			return err
		}
		stored.Through = nil
		if unread != nil {
			seen[stored.BatchID] = true
			*problems = append(*problems, *unread)
			return nil
		}
		want, ok := runs[stored.BatchID]
		if !ok || seen[stored.BatchID] {
			if all {
				*problems = append(*problems, Problem{Kind: RunSummaryDiffers,
					Detail: fmt.Sprintf("run %s has a summary but no event", stored.BatchID)})
			}
			return nil
		}
		seen[stored.BatchID] = true
		folded := *want
		folded.Through = nil // what the stored one is compared without
		if d := diffRun(stored, &folded); d != "" {
			*problems = append(*problems, Problem{Kind: RunSummaryDiffers,
				Detail: fmt.Sprintf("run %s: %s", stored.BatchID, d)})
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	ids := make([]string, 0, len(runs))
	for id := range runs {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		*problems = append(*problems, Problem{Kind: RunSummaryDiffers, Detail: fmt.Sprintf("run %s has events but no summary", id)})
	}
	return n, nil
}

// beyondRead tells whether a stored summary counts events verification did
// not read (its Through, per stream, is what it counts): a Problem if so,
// nil when it can be compared. Summaries are read after the streams, so a
// collector writing a run meanwhile makes its summary count more than was
// read; that is RunNotCompared only when the stream really holds those
// events now, else the summary claims events that do not exist.
func beyondRead(ctx context.Context, s Store, r *store.Run, read map[string]int64) (*Problem, error) {
	streams := slices.Sorted(maps.Keys(r.Through))
	for _, stream := range streams {
		through := r.Through[stream]
		size, verified := read[stream]
		if verified && through <= size {
			continue
		}
		last, err := s.LastSequence(ctx, stream)
		if err != nil {
			return nil, err
		}
		switch {
		case through > last:
			return &Problem{Stream: stream, Kind: RunSummaryDiffers, Sequence: through,
				Detail: fmt.Sprintf("run %s: its summary counts events of stream %s up to sequence %d, the stream holds %d", r.BatchID, stream, through, last)}, nil
		case !verified:
			return &Problem{Stream: stream, Kind: RunNotCompared, Sequence: through,
				Detail: fmt.Sprintf("run %s: its summary counts events of stream %s, which was not verified", r.BatchID, stream)}, nil
		default:
			return &Problem{Stream: stream, Kind: RunNotCompared, Sequence: through,
				Detail: fmt.Sprintf("run %s: its summary counts events of stream %s up to sequence %d, written after verification read the stream up to %d (a collector is writing the run); verify again to compare it", r.BatchID, stream, through, size)}, nil
		}
	}
	return nil, nil
}

// diffRun names the fields in which two summaries differ.
func diffRun(got, want *store.Run) string {
	if reflect.DeepEqual(got, want) {
		return "" // equal values marshal alike; this spares two encodings a run
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if bytes.Equal(g, w) {
		return ""
	}
	var gm, wm map[string]any
	_ = json.Unmarshal(g, &gm)
	_ = json.Unmarshal(w, &wm)
	var diffs []string
	for k, wv := range wm {
		gv, _ := json.Marshal(gm[k])
		wvb, _ := json.Marshal(wv)
		if !bytes.Equal(gv, wvb) {
			diffs = append(diffs, fmt.Sprintf("%s is %s, its events give %s", k, gv, wvb))
		}
	}
	for k := range gm {
		if _, ok := wm[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s is set, its events give none", k))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

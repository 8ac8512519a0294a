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
func (p Problem) Failing() bool { return p.Kind != Unsigned }

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
	Root        string `json:"root"`
	// Checkpoints is how many signed checkpoints were checked; Covered the
	// size of the largest.
	Checkpoints int   `json:"checkpoints"`
	Covered     int64 `json:"covered"`
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
	for _, stream := range streams {
		sum, err := verifyStream(ctx, s, stream, opts, runs, &rep.Problems)
		if err != nil {
			return nil, err
		}
		rep.Streams = append(rep.Streams, sum)
	}
	n, err := checkRuns(ctx, s, runs, len(opts.Streams) == 0, &rep.Problems)
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
	hash     string // recomputed from the document
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
	leaves := &tileLeaves{r: head.Tiles, size: head.Size}

	// Hashing, parsing and the indexed-copy checks run in parallel; the
	// tree, the order checks and the run folding follow the stream's order.
	type job struct {
		c    checked
		done chan struct{}
	}
	jobs := make(chan *job, 256)
	order := make(chan *job, 4096)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for j := range jobs {
				check(&j.c)
				j.c.e.Document = nil // not needed beyond here
				close(j.done)
			}
		})
	}
	var readErr error
	go func() {
		defer close(order)
		defer close(jobs)
		readErr = s.EachEntry(ctx, stream, func(e *store.StoredEntry) error {
			j := &job{c: checked{e: e}, done: make(chan struct{})}
			order <- j
			jobs <- j
			return ctx.Err()
		})
	}()
	st := &streamCheck{stream: stream, leaves: leaves, cps: cps, seen: map[int64]bool{}, recomputed: map[int64]leafInfo{},
		expected: 1, runs: runs, sum: &sum, problems: problems, opts: opts}
	for j := range order {
		<-j.done
		st.consume(&j.c)
	}
	wg.Wait()
	if readErr != nil {
		return sum, readErr
	}
	tree, cpIdx, mismatched, recomputed := &st.tree, st.cpIdx, st.mismatched, st.recomputed
	sum.Entries = tree.Size()
	root := tree.Root()
	sum.Root = hex.EncodeToString(root[:])

	classify(stream, mismatched, recomputed, leaves, problems)

	// Checkpoints beyond what the store holds: its tail was cut.
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
	if head.Size != tree.Size() && head.Size != 0 {
		*problems = append(*problems, Problem{Stream: stream, Kind: HeadDiffers, Sequence: head.Size,
			Detail: fmt.Sprintf("the stream's stored size is %d, its entries number %d", head.Size, tree.Size())})
	}
	return sum, nil
}

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
	seen       map[int64]bool
	mismatched []int64 // sequences whose leaf differs from the stored tile's
	recomputed map[int64]leafInfo
	expected   int64
	runs       map[string]*store.Run
	sum        *StreamSummary
	problems   *[]Problem
	opts       Options
}

// consume runs the in-order checks of an entry whose parallel checks are done.
func (st *streamCheck) consume(c *checked) {
	e, stream := c.e, st.stream
	*st.problems = append(*st.problems, c.problems...)
	switch {
	case st.seen[e.Sequence] || e.Sequence < st.expected:
		*st.problems = append(*st.problems, Problem{Stream: stream, Kind: Inserted, Sequence: e.Sequence,
			Detail: fmt.Sprintf("a second entry (%s %s) under sequence %d", e.Kind, e.EventID, e.Sequence)})
		return
	case e.Sequence > st.expected:
		for s := st.expected; s < e.Sequence; s++ {
			*st.problems = append(*st.problems, Problem{Stream: stream, Kind: Missing, Sequence: s, Detail: "no entry holds this sequence"})
		}
	}
	st.seen[e.Sequence] = true
	st.expected = e.Sequence + 1
	switch e.Kind {
	case merkle.KindEvent:
		st.sum.Events++
	case merkle.KindDeadLetter:
		st.sum.DeadLetters++
	case merkle.KindGap:
		st.sum.Gaps++
	}
	leaf := merkle.LeafHash(stream, e.Sequence, e.Kind, c.hash)
	st.recomputed[e.Sequence] = leafInfo{e.Kind, c.hash}
	if stored, ok := st.leaves.leaf(e.Sequence); ok && stored != leaf {
		st.mismatched = append(st.mismatched, e.Sequence)
	}
	st.tree.Append(leaf)
	for st.cpIdx < len(st.cps) && st.cps[st.cpIdx].Size <= st.tree.Size() {
		cp := st.cps[st.cpIdx]
		if cp.Size == st.tree.Size() && cp.Root != st.tree.Root() {
			*st.problems = append(*st.problems, Problem{Stream: stream, Kind: TreeMismatch, Sequence: cp.Size,
				Detail: fmt.Sprintf("the entries up to size %d do not give the root the %s checkpoint signed", cp.Size, cp.source)})
		}
		st.cpIdx++
	}
	if c.ev != nil && c.ev.BatchID != "" {
		r := st.runs[c.ev.BatchID]
		if r == nil {
			r = &store.Run{}
			st.runs[c.ev.BatchID] = r
		}
		store.ApplyToRun(r, c.ev)
	}
	if st.opts.Progress != nil && st.tree.Size()%100_000 == 0 {
		st.opts.Progress(stream, st.tree.Size())
	}
}

// check recomputes an entry's hash from its document, parses an event and
// compares the indexed copies.
func check(c *checked) {
	e := c.e
	sum := sha256.Sum256(e.Document)
	hash := hex.EncodeToString(sum[:])
	var problems []Problem
	if hash != e.Hash {
		problems = append(problems, Problem{Stream: e.Stream, Kind: Modified, Sequence: e.Sequence,
			Detail: fmt.Sprintf("the %s's document hashes to %s, its stored hash is %s", e.Kind, hash, e.Hash)})
	}
	if e.Kind == merkle.KindEvent {
		ev, err := auditevent.ParseCanonical(e.Document)
		if err != nil {
			problems = append(problems, Problem{Stream: e.Stream, Kind: BadDocument, Sequence: e.Sequence, Detail: err.Error()})
		} else {
			c.ev = &ev
			if e.Indexed != nil {
				for _, d := range e.Indexed(&ev) {
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
}

// classify names the kind of each entry whose leaf differs from the stored
// tile: an entry logged under another sequence (swapped, renumbered) is
// Reordered, any other Modified.
func classify(stream string, mismatched []int64, recomputed map[int64]leafInfo, leaves *tileLeaves, problems *[]Problem) {
	set := map[int64]bool{}
	for _, p := range mismatched {
		set[p] = true
	}
	for _, p := range mismatched {
		info := recomputed[p]
		home := int64(0)
		candidates := []int64{p - 1, p + 1, p - 2, p + 2}
		for q := range set {
			candidates = append(candidates, q)
		}
		for _, q := range candidates {
			if q == p || q < 1 {
				continue
			}
			if stored, ok := leaves.leaf(q); ok && stored == merkle.LeafHash(stream, q, info.kind, info.hash) {
				home = q
				break
			}
		}
		if home != 0 {
			*problems = append(*problems, Problem{Stream: stream, Kind: Reordered, Sequence: p,
				Detail: fmt.Sprintf("the entry at sequence %d was logged at sequence %d", p, home)})
			continue
		}
		*problems = append(*problems, Problem{Stream: stream, Kind: Modified, Sequence: p,
			Detail: "the entry differs from the one logged at this sequence (its leaf is not the stored tile's)"})
	}
}

// tileLeaves reads the leaf hashes the stored tiles hold, tile by tile.
type tileLeaves struct {
	r    tlog.TileReader
	size int64
	tile int64
	data []byte
	bad  bool
}

func (t *tileLeaves) leaf(seq int64) (tlog.Hash, bool) {
	i := seq - 1
	if t.r == nil || t.bad || i >= t.size || i < 0 {
		return tlog.Hash{}, false
	}
	n := i >> merkle.TileHeight
	if t.data == nil || t.tile != n {
		w := min(int64(1)<<merkle.TileHeight, t.size-n<<merkle.TileHeight)
		d, err := t.r.ReadTiles([]tlog.Tile{{H: merkle.TileHeight, L: 0, N: n, W: int(w)}})
		if err != nil {
			t.bad = true
			return tlog.Hash{}, false
		}
		t.tile, t.data = n, d[0]
	}
	var h tlog.Hash
	k := i - n<<merkle.TileHeight
	copy(h[:], t.data[k*tlog.HashSize:(k+1)*tlog.HashSize])
	return h, true
}

// checkRuns compares every stored run summary with the one recomputed from
// its events, field by field.
func checkRuns(ctx context.Context, s Store, runs map[string]*store.Run, all bool, problems *[]Problem) (int, error) {
	n := 0
	err := s.EachRun(ctx, store.RunQuery{}, func(stored *store.Run) error {
		n++
		want, ok := runs[stored.BatchID]
		if !ok {
			if all {
				*problems = append(*problems, Problem{Kind: RunSummaryDiffers,
					Detail: fmt.Sprintf("run %s has a summary but no event", stored.BatchID)})
			}
			return nil
		}
		delete(runs, stored.BatchID)
		if d := diffRun(stored, want); d != "" {
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
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		*problems = append(*problems, Problem{Kind: RunSummaryDiffers, Detail: fmt.Sprintf("run %s has events but no summary", id)})
	}
	return n, nil
}

// diffRun names the fields in which two summaries differ.
func diffRun(got, want *store.Run) string {
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

// Package retention removes the oldest entries of a stream once a retention
// period has passed, without breaking any proof: it removes only entry
// documents (events, dead letters, gaps) and the summaries of runs it
// removes whole, never the Merkle tiles or a checkpoint, so the tree, every
// signed checkpoint and the proofs of the remaining entries stay valid. It
// first records the prune as a batchaudit.retention.prune event in the
// stream, through the store's normal write path, and signs a checkpoint
// that covers that event; store/verify then reports the removed prefix as
// pruned, and a prefix removed any other way as missing.
// docs/integrity.md ("Retention") describes the rules.
package retention

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/verify"
)

// DefaultMinimum is the shortest retention period Prune accepts unless told
// otherwise: 12 months (PCI DSS 10.5.1), counted as 366 days so a leap year
// never makes it short. HIPAA (6 years, 164.316(b)(2)) and SOX evidence (7
// years, SEC Rule 2-06) need a longer minimum where they apply.
const DefaultMinimum = 366 * 24 * time.Hour

// ErrRefused wraps every reason Prune refuses to remove anything.
var ErrRefused = errors.New("retention refused")

// Store is what retention works on.
type Store interface {
	store.Store
	store.Pruner
}

// Options configure Prune.
type Options struct {
	// OlderThan is the retention period: entries older than it (by their
	// time and by the time they were stored) are removed.
	OlderThan time.Duration
	// Minimum is the shortest OlderThan accepted (DefaultMinimum if 0).
	Minimum time.Duration
	// Now is the time the period counts back from (time.Now() if zero).
	Now time.Time
	// DryRun plans and reports without writing or removing anything.
	DryRun bool
	// Signers sign the checkpoint that covers the retention event (the
	// collector's checkpoint keys); Verifiers check the stream's
	// checkpoints (the signers' public halves, and keys rotated out).
	Signers   []note.Signer
	Verifiers []note.Verifier
	// OriginPrefix: a stream's checkpoints have origin OriginPrefix+stream.
	OriginPrefix string
	// External are the checkpoints the collector published.
	External []verify.External
	// Publish, when set, publishes the signed checkpoint as the collector
	// does (e.g. appends it to its checkpoint file); final says it is the
	// last one until a collector writes the stream again.
	Publish func(stream string, size int64, signed []byte, final bool) error
	// WriterStopped states that no collector writes the stream now. A
	// backend with one writer per stream (Elasticsearch) needs it, or a
	// published final checkpoint that covers the whole stream.
	WriterStopped bool
	// Actor is who runs the prune (user.id of the retention event);
	// Principal, when known, the identity the store authenticated.
	Actor, Principal string
}

// Result is what Prune did, or with DryRun would do.
type Result struct {
	Stream string    `json:"stream"`
	Cutoff time.Time `json:"cutoff"`
	DryRun bool      `json:"dry_run"`
	// From..Through are the entries removed (From 0: none).
	From    int64 `json:"from,omitempty"`
	Through int64 `json:"through,omitempty"`
	// Entries is how many entry documents are removed; Runs the run
	// summaries removed with them (runs whose events all are).
	Entries int64    `json:"entries"`
	Runs    []string `json:"runs"`
	// Checkpoint is the size of the signed checkpoint covering them.
	Checkpoint int64 `json:"checkpoint"`
	// Stop says why removal stops where it does.
	Stop string `json:"stop,omitempty"`
	// AlreadyPruned is the prefix an earlier prune removed.
	AlreadyPruned int64 `json:"already_pruned,omitempty"`
	// The retention event, and the checkpoint signed over it.
	EventID       string `json:"event_id,omitempty"`
	EventSequence int64  `json:"event_sequence,omitempty"`
	Signed        int64  `json:"signed_size,omitempty"`
	// Removed is how many entries the backend removed (= Entries, unless
	// something else removed some meanwhile).
	Removed int64 `json:"removed,omitempty"`
}

// Prune removes the entries of stream older than opts.OlderThan, as the
// package comment says. It refuses (ErrRefused) a period inside the
// minimum, a stream that does not verify, entries no signed checkpoint
// covers, and on a one-writer backend a stream whose collector may run.
func Prune(ctx context.Context, s Store, stream string, opts Options) (*Result, error) {
	if opts.Minimum == 0 {
		opts.Minimum = DefaultMinimum
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.OriginPrefix == "" {
		opts.OriginPrefix = verify.DefaultOriginPrefix
	}
	switch {
	case opts.OlderThan <= 0:
		return nil, fmt.Errorf("%w: the retention period must be positive", ErrRefused)
	case opts.OlderThan < opts.Minimum:
		return nil, fmt.Errorf("%w: the retention period %s is inside the minimum retention of %s: nothing younger than the minimum is ever removed",
			ErrRefused, Days(opts.OlderThan), Days(opts.Minimum))
	case len(opts.Verifiers) == 0 || (len(opts.Signers) == 0 && !opts.DryRun):
		return nil, fmt.Errorf("%w: the checkpoint signer key is needed: only entries a signed checkpoint covers are removed, and the retention event is signed too", ErrRefused)
	}
	res := &Result{Stream: stream, Cutoff: opts.Now.Add(-opts.OlderThan).UTC(), DryRun: opts.DryRun, Runs: []string{}}

	// Only a trail that verifies is pruned: nothing tampered with is
	// destroyed, and the tiles that will stand in for the removed entries
	// are the ones the signed checkpoints sign.
	rep, err := verify.Verify(ctx, s, verify.Options{Verifiers: note.VerifierList(opts.Verifiers...), External: opts.External,
		OriginPrefix: opts.OriginPrefix, Streams: []string{stream}})
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		var ps []string
		for _, p := range rep.Problems {
			if p.Failing() && len(ps) < 5 {
				ps = append(ps, fmt.Sprintf("%s #%d: %s", p.Kind, p.Sequence, p.Detail))
			}
		}
		return nil, fmt.Errorf("%w: stream %s does not verify (batchaudit verify lists every problem): %s", ErrRefused, stream, strings.Join(ps, "; "))
	}
	sum := rep.Streams[0]
	res.Checkpoint = sum.Covered
	if sum.Pruned != nil {
		res.AlreadyPruned = sum.Pruned.Through
	}
	if err := plan(ctx, s, res); err != nil {
		return nil, err
	}
	if res.From == 0 || opts.DryRun {
		return res, nil
	}
	if !s.SharedWriters() && !opts.WriterStopped {
		if err := writerStopped(stream, sum.Size, opts.External); err != nil {
			return nil, err
		}
	}
	if err := s.CheckPrune(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}

	// The record of the prune comes first, signed, so that no entry is
	// ever missing without a signed explanation; a failure after it
	// leaves entries that a second run removes.
	if err := record(ctx, s, res, opts); err != nil {
		return nil, err
	}
	if err := sign(ctx, s, res, sum, opts); err != nil {
		return nil, fmt.Errorf("the retention event is stored at #%d but no checkpoint covers it yet, so nothing was removed: %w", res.EventSequence, err)
	}
	if res.Removed, err = s.Prune(ctx, stream, res.Through, res.Runs); err != nil {
		return res, fmt.Errorf("the retention event is recorded at #%d and signed, but removing the entries failed (run retention again to finish): %w", res.EventSequence, err)
	}
	return res, nil
}

// writerStopped checks that the published checkpoints end with the final
// checkpoint of a clean stop that covers every entry: then no collector
// writes the stream.
func writerStopped(stream string, entries int64, external []verify.External) error {
	var size int64 = -1
	final := false
	for _, x := range external {
		if x.Stream != stream {
			continue
		}
		c, err := merkle.ParseBody(merkle.Text(x.Note))
		if err != nil {
			continue // verify reported it
		}
		if c.Size > size {
			size, final = c.Size, false
		}
		if c.Size == size {
			final = final || x.Final
		}
	}
	if final && size == entries {
		return nil
	}
	got := "no published checkpoint"
	if size >= 0 {
		got = fmt.Sprintf("the latest published checkpoint has size %d and is %s", size, map[bool]string{true: "final", false: "not final"}[final])
	}
	return fmt.Errorf("%w: this store takes one writer per stream, and the retention event is written into stream %s: stop the collector that writes it first "+
		"(its final checkpoint, published in the checkpoint file, then covers all %d entries; %s), or state that it is stopped (--collector-stopped)",
		ErrRefused, stream, entries, got)
}

// plan finds the prefix to remove: the entries older than the cutoff by
// both clocks, up to the first that is not, cut back so that no run is
// split; it must lie within the latest signed checkpoint.
func plan(ctx context.Context, s Store, res *Result) error {
	var (
		first, through int64
		firstOfRun     = map[string]int64{}
		runIDs         []string
		entries        = map[int64]bool{}
	)
	err := s.EachEntryAge(ctx, res.Stream, func(a store.EntryAge) bool {
		if first == 0 {
			first = a.Sequence
		}
		if !a.Time.Before(res.Cutoff) {
			res.Stop = fmt.Sprintf("entry #%d is from %s, not older than the cutoff", a.Sequence, a.Time.Format(time.RFC3339))
			return false
		}
		through = a.Sequence
		entries[a.Sequence] = true
		if a.BatchID != "" {
			if _, ok := firstOfRun[a.BatchID]; !ok {
				firstOfRun[a.BatchID] = a.Sequence
				runIDs = append(runIDs, a.BatchID)
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if through == 0 {
		if res.Stop == "" {
			res.Stop = "the stream holds no entry"
		}
		return nil
	}
	// A run is removed whole or not at all, so every run summary that
	// remains matches its events (verify recomputes them).
	extents, err := s.RunExtents(ctx, res.Stream, runIDs)
	if err != nil {
		return err
	}
	for changed := true; changed; {
		changed = false
		for _, id := range runIDs {
			f, x := firstOfRun[id], extents[id]
			if f <= through && (x.Last > through || x.Elsewhere) {
				where := fmt.Sprintf("has events up to #%d", x.Last)
				if x.Elsewhere {
					where = "has events in another stream"
				}
				through = f - 1
				res.Stop = fmt.Sprintf("run %s starts at #%d and %s: a run is removed whole or not at all", id, f, where)
				changed = true
			}
		}
	}
	if through < first {
		return nil
	}
	if through > res.Checkpoint {
		return fmt.Errorf("%w: entries #%d..#%d of stream %s are older than the cutoff, but no signed checkpoint covers them (the latest covers %d entries): "+
			"let the collector sign one (every checkpoints::interval) and run again", ErrRefused, max(first, res.Checkpoint+1), through, res.Stream, res.Checkpoint)
	}
	res.From, res.Through = first, through
	for seq := range entries {
		if seq <= through {
			res.Entries++
		}
	}
	for _, id := range runIDs {
		if firstOfRun[id] <= through {
			res.Runs = append(res.Runs, id)
		}
	}
	slices.Sort(res.Runs)
	return nil
}

// record writes the retention event into the stream.
func record(ctx context.Context, s Store, res *Result, opts Options) error {
	actor := auditevent.Actor{ID: opts.Actor}
	if actor.ID != "" {
		actor.Type = "human"
	}
	ev := auditevent.Event{
		ID: auditevent.NewID(), Name: auditevent.RetentionPrune, Time: opts.Now.UTC(), Actor: actor, AuthPrincipal: opts.Principal,
		Body: fmt.Sprintf("retention removed entries #%d..#%d of stream %s (%d entries, %d run summaries) older than %s (before %s)",
			res.From, res.Through, res.Stream, res.Entries, len(res.Runs), Days(opts.OlderThan), res.Cutoff.Format(time.RFC3339)),
		Retention: auditevent.Retention{
			FromSequence: &res.From, ThroughSequence: &res.Through, Entries: &res.Entries, Runs: ptr(int64(len(res.Runs))),
			CheckpointSize: &res.Checkpoint, Cutoff: res.Cutoff.Format(time.RFC3339Nano),
			Period: Days(opts.OlderThan), Minimum: Days(opts.Minimum),
		},
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	h, err := ev.Hash()
	if err != nil {
		return err
	}
	out, err := s.Write(ctx, res.Stream, []store.StoredEvent{{Event: ev, Hash: h}})
	if err != nil {
		return fmt.Errorf("write the retention event: %w", err)
	}
	if out[0].Outcome != store.Stored {
		return fmt.Errorf("write the retention event: %s: %s", out[0].Outcome, out[0].Reason)
	}
	res.EventID, res.EventSequence = ev.ID, out[0].Sequence
	return nil
}

// sign signs a checkpoint of the stream's tree, which holds the retention
// event, after proving that it extends the tree just verified; keeps it
// with the trail and publishes it.
func sign(ctx context.Context, s Store, res *Result, verified verify.StreamSummary, opts Options) error {
	tree, err := s.Tree(ctx, res.Stream)
	if err != nil {
		return err
	}
	if tree.N < res.EventSequence {
		return fmt.Errorf("the stream's tree has %d entries, short of the retention event", tree.N)
	}
	var old tlog.Tree
	old.N = verified.Size
	root, err := hex.DecodeString(verified.Root)
	if err != nil || len(root) != len(old.Hash) {
		return fmt.Errorf("verified root %q is not a hash", verified.Root)
	}
	copy(old.Hash[:], root)
	head, err := s.Head(ctx, res.Stream)
	if err != nil {
		return err
	}
	if err := merkle.CheckConsistency(tree, old, tlog.TileHashReader(tree, head.Tiles)); err != nil {
		return err
	}
	cp := merkle.Checkpoint{Origin: opts.OriginPrefix + res.Stream, Size: tree.N, Root: tree.Hash}
	msg, err := cp.Sign(opts.Signers...)
	if err != nil {
		return err
	}
	if err := s.PutCheckpoint(ctx, store.StoredCheckpoint{Stream: res.Stream, Size: tree.N, Root: hex.EncodeToString(tree.Hash[:]),
		Note: string(msg), Created: time.Now().UTC()}); err != nil {
		return err
	}
	if opts.Publish != nil {
		if err := opts.Publish(res.Stream, tree.N, msg, !s.SharedWriters()); err != nil {
			return fmt.Errorf("publish the checkpoint: %w", err)
		}
	}
	res.Signed = tree.N
	return nil
}

// Days writes a period as whole days ("400d") when it is one, else as Go
// writes durations.
func Days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func ptr[T any](v T) *T { return &v }

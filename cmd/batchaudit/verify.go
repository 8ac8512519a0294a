package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

var zeroTime time.Time

// streamReport is the verification result of one stream.
type streamReport struct {
	Stream       string `json:"stream"`
	Events       int    `json:"events"`
	DeadLetters  int    `json:"dead_letters"`
	LastSequence int64  `json:"last_sequence"`
	seqs         []seqRef
}

type seqRef struct {
	seq int64
	id  string
}

type verifyReport struct {
	OK       bool            `json:"ok"`
	Streams  []*streamReport `json:"streams"`
	Problems []string        `json:"problems"`
}

func verifyCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	only := fs.String("stream", "", "verify only this stream (default: every stream)")
	return func(ctx context.Context, c *cli, _ []string) error {
		if c.format == formatCSV {
			return fmt.Errorf("%w: verify prints text or json, not csv", errUsage)
		}
		rep, err := verify(ctx, c.store, *only)
		if err != nil {
			return err
		}
		if c.format == formatJSON {
			if err := c.writeJSON(rep); err != nil {
				return err
			}
		} else {
			for _, s := range rep.Streams {
				fmt.Fprintf(c.out, "stream %s: %d events, %d dead letters, last sequence %d\n", s.Stream, s.Events, s.DeadLetters, s.LastSequence)
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(c.out, "BROKEN:", p)
			}
			if rep.OK {
				fmt.Fprintln(c.out, "OK: every stored hash matches its content and every stream is numbered 1..N without gaps.")
			} else {
				fmt.Fprintf(c.out, "FAILED: %d problem(s); the trail has been altered or is incomplete.\n", len(rep.Problems))
			}
		}
		if !rep.OK {
			return errVerify
		}
		return nil
	}
}

// verify recomputes every event's hash from its stored content, checks every
// dead letter's document against its hash, and checks that each stream's
// sequence numbers (events and dead letters together) are exactly 1..N with
// N the stream's last sequence.
func verify(ctx context.Context, s store.Store, only string) (*verifyReport, error) {
	rep := &verifyReport{Problems: []string{}}
	streams := map[string]*streamReport{}
	get := func(name string) *streamReport {
		r, ok := streams[name]
		if !ok {
			r = &streamReport{Stream: name}
			streams[name] = r
		}
		return r
	}
	if only != "" {
		get(only)
	}
	// Streamed: only the sequence numbers of the trail stay in memory.
	err := s.EachEvent(ctx, store.EventQuery{}, func(e *store.StoredEvent) error {
		if only != "" && e.Stream != only {
			return nil
		}
		r := get(e.Stream)
		r.Events++
		r.seqs = append(r.seqs, seqRef{e.Sequence, e.ID})
		h, err := e.Event.Hash()
		switch {
		case err != nil:
			rep.Problems = append(rep.Problems, fmt.Sprintf("event %s (stream %s, sequence %d): its content cannot be hashed: %v", e.ID, e.Stream, e.Sequence, err))
		case h != e.Hash:
			rep.Problems = append(rep.Problems, fmt.Sprintf("event %s (stream %s, sequence %d): stored hash %s, but its content hashes to %s", e.ID, e.Stream, e.Sequence, e.Hash, h))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dls, err := s.DeadLetters(ctx, zeroTime, zeroTime, 0)
	if err != nil {
		return nil, err
	}
	for _, d := range dls {
		if only != "" && d.Stream != only {
			continue
		}
		r := get(d.Stream)
		r.DeadLetters++
		r.seqs = append(r.seqs, seqRef{d.Sequence, d.EventID})
		// Dead letters of events that could not be hashed have no hash.
		if d.Hash != "" {
			if h := canonical.HashBytes([]byte(d.Document)); h != d.Hash {
				rep.Problems = append(rep.Problems, fmt.Sprintf("dead letter %s (stream %s, sequence %d): stored hash %s, but its document hashes to %s", d.EventID, d.Stream, d.Sequence, d.Hash, h))
			}
		}
	}
	names := make([]string, 0, len(streams))
	for n := range streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := streams[n]
		if r.LastSequence, err = s.LastSequence(ctx, n); err != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, checkSequences(r)...)
		rep.Streams = append(rep.Streams, r)
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// checkSequences reports duplicates, gaps and a missing tail.
func checkSequences(r *streamReport) []string {
	var problems []string
	sort.Slice(r.seqs, func(i, j int) bool { return r.seqs[i].seq < r.seqs[j].seq })
	want := int64(1)
	for i, s := range r.seqs {
		switch {
		case i > 0 && s.seq == r.seqs[i-1].seq:
			problems = append(problems, fmt.Sprintf("stream %s: sequence %d is held by both %s and %s", r.Stream, s.seq, r.seqs[i-1].id, s.id))
			continue
		case s.seq > want:
			problems = append(problems, fmt.Sprintf("stream %s: %s missing (next present: %d, event %s)", r.Stream, gap(want, s.seq-1), s.seq, s.id))
		case s.seq < want:
			problems = append(problems, fmt.Sprintf("stream %s: event %s has invalid sequence %d", r.Stream, s.id, s.seq))
			continue
		}
		want = s.seq + 1
	}
	if last := want - 1; last < r.LastSequence {
		problems = append(problems, fmt.Sprintf("stream %s: %s missing at the end (the stream's last sequence is %d)", r.Stream, gap(last+1, r.LastSequence), r.LastSequence))
	} else if last > r.LastSequence {
		problems = append(problems, fmt.Sprintf("stream %s: sequence %d is beyond the stream's last sequence %d", r.Stream, last, r.LastSequence))
	}
	return problems
}

func gap(from, to int64) string {
	if from == to {
		return fmt.Sprintf("sequence %d is", from)
	}
	return fmt.Sprintf("sequences %d..%d are", from, to)
}

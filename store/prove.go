package store

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/store/merkle"
)

// ErrNotCovered means an entry is not covered by a kept checkpoint yet.
var ErrNotCovered = fmt.Errorf("not covered by a checkpoint yet")

// Prove builds the proof bundle of a stored event against the latest kept
// checkpoint of its stream, with a consistency proof from since (a signed
// checkpoint note) when given. It reads O(log n) tiles.
func Prove(ctx context.Context, s Integrity, eventID string, since []byte) (*merkle.Bundle, error) {
	e, err := s.EntryOf(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("no stored event has id %s", eventID)
	}
	cps, err := s.Checkpoints(ctx, e.Stream)
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 || cps[len(cps)-1].Size < e.Sequence {
		return nil, fmt.Errorf("event %s (stream %s, sequence %d) is %w; try again after the next one", eventID, e.Stream, e.Sequence, ErrNotCovered)
	}
	latest := cps[len(cps)-1]
	cp, err := merkle.ParseBody(merkle.Text(latest.Note))
	if err != nil {
		return nil, err
	}
	head, err := s.Head(ctx, e.Stream)
	if err != nil {
		return nil, err
	}
	r := tlog.TileHashReader(cp.Tree(), head.Tiles)
	incl, err := tlog.ProveRecord(cp.Size, e.Sequence-1, r)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	b := &merkle.Bundle{Format: merkle.BundleFormat, Stream: e.Stream, Sequence: e.Sequence, Kind: e.Kind,
		Document: string(e.Document), Hash: e.Hash, Checkpoint: latest.Note, Inclusion: merkle.Hashes(incl)}
	if since != nil {
		oc, err := merkle.ParseBody(merkle.Text(string(since)))
		if err != nil {
			return nil, fmt.Errorf("the older checkpoint: %w", err)
		}
		p, err := tlog.ProveTree(cp.Size, oc.Size, r)
		if err != nil {
			return nil, fmt.Errorf("consistency proof: %w", err)
		}
		b.Consistency = &merkle.ConsistencyProof{From: string(since), Proof: merkle.Hashes(p)}
	}
	return b, nil
}

package tracker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// A run remembers the ids of its most recent events (log.record.uid), so
// that a request delivered again (a client retry after a lost ack, or after
// a crash) is not counted twice. The window is bounded: seenChunks chunks of
// seenChunkSize ids; the oldest chunk is forgotten when a new one starts.
// Chunks are the unit of persistence, so a request rewrites only the chunks
// it added ids to.
const (
	seenChunkSize = 1024
	seenChunks    = 8
	// SeenWindow is how many recent event ids per run are deduplicated.
	SeenWindow = seenChunkSize * seenChunks
)

func seenKey(batchID string, chunk int) string {
	return "seen/" + batchID + "/" + strconv.Itoa(chunk%seenChunks)
}

// seenBefore reports whether id was already handled in r, and remembers it
// otherwise. Events without an id cannot be deduplicated.
func (r *run) seenBefore(id string) bool {
	if id == "" {
		return false
	}
	if _, ok := r.seen[id]; ok {
		return true
	}
	if r.seen == nil {
		r.seen = map[string]struct{}{}
	}
	if r.seenN == 0 || len(r.seenRing[(r.seenN-1)%seenChunks]) >= seenChunkSize {
		r.seenN++
		r.dirtyMeta = true
		slot := (r.seenN - 1) % seenChunks
		for _, old := range r.seenRing[slot] {
			delete(r.seen, old)
		}
		r.seenRing[slot] = make([]string, 0, seenChunkSize)
	}
	c := r.seenN - 1
	id = strings.Clone(id) // do not pin the request's memory
	r.seenRing[c%seenChunks] = append(r.seenRing[c%seenChunks], id)
	r.seen[id] = struct{}{}
	if n := len(r.seenDirty); n == 0 || r.seenDirty[n-1] != c {
		r.seenDirty = append(r.seenDirty, c)
	}
	return false
}

// loadSeen restores the dedupe window of a run saved with n chunks.
func (t *Tracker) loadSeen(ctx context.Context, r *run, n int) error {
	r.seenN = n
	for c := max(0, n-seenChunks); c < n; c++ {
		data, err := t.get(ctx, seenKey(r.batchID, c))
		if err == nil && data == nil {
			err = fmt.Errorf("missing")
		}
		var ids []string
		if err == nil {
			ids, err = decodeIDs(data)
		}
		if err != nil {
			// Without the chunk, a redelivery of those events is counted
			// again; the rest of the state is still usable.
			return fmt.Errorf("event id chunk %d: %w", c, err)
		}
		if r.seen == nil {
			r.seen = make(map[string]struct{}, len(ids)*(n-c))
		}
		r.seenRing[c%seenChunks] = ids
		for _, id := range ids {
			r.seen[id] = struct{}{}
		}
	}
	return nil
}

// idsVersion versions the chunks of event ids.
const idsVersion = 1

func encodeIDs(ids []string) []byte {
	e := enc{b: make([]byte, 0, 40*len(ids)+8)}
	e.u(idsVersion)
	e.ss(ids)
	return e.b
}

func decodeIDs(data []byte) ([]string, error) {
	d := dec{b: data}
	if v := d.u(); d.err == nil && v != idsVersion {
		return nil, errCorrupt
	}
	ids := d.ss()
	if d.err != nil {
		return nil, d.err
	}
	return ids, nil
}

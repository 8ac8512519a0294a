package state

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// Meta is a dataset's index bookkeeping.
type Meta struct {
	Role      string `json:"role"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Slots     uint64 `json:"slots"` // index positions in use (some may be stale)
	Live      uint64 `json:"live"`  // keys with a current (non-deleted) state
	Tombs     uint64 `json:"tombs"` // deleted keys still kept for redelivery
}

// Stale is the number of index positions that no longer point at a record.
func (m *Meta) Stale() uint64 {
	if n := m.Live + m.Tombs; m.Slots > n {
		return m.Slots - n
	}
	return 0
}

// RunDataset is a dataset a run wrote to, with the partitions it wrote.
type RunDataset struct {
	ID         string   `json:"id"`
	Partitions []string `json:"partitions,omitempty"`
}

// Counts are a run's change-type totals.
type Counts struct {
	Inserted  int64 `json:"inserted"`
	Updated   int64 `json:"updated"`
	Deleted   int64 `json:"deleted"`
	Unchanged int64 `json:"unchanged"`
}

// Run is the state of one batch run.
type Run struct {
	ID       uint64       `json:"-"`
	BatchID  string       `json:"batch_id"`
	Datasets []RunDataset `json:"datasets,omitempty"`
	Counts   Counts       `json:"counts"`
	Ended    bool         `json:"ended,omitempty"`
	Updated  time.Time    `json:"updated"`
}

// Touch notes that the run wrote to dataset ds in partition p.
func (r *Run) Touch(ds, p string) {
	for i := range r.Datasets {
		if r.Datasets[i].ID == ds {
			for _, q := range r.Datasets[i].Partitions {
				if q == p {
					return
				}
			}
			r.Datasets[i].Partitions = append(r.Datasets[i].Partitions, p)
			return
		}
	}
	r.Datasets = append(r.Datasets, RunDataset{ID: ds, Partitions: []string{p}})
}

// Store reads and writes the state through a storage client. Writes are
// buffered and applied by Flush in one storage Batch, which the file storage
// extension runs as one transaction. Store is not safe for concurrent use;
// the processor serializes access.
type Store struct {
	client  storage.Client
	observe func(op string, d time.Duration)

	metas map[string]*Meta  // every known dataset (loaded by Open)
	tails map[string][]byte // dataset → content of its last index chunk
	runs  map[uint64]*Run   // runs touched since start
	seen  map[uint64]int64  // run → last update (unix seconds), persisted under runsKey
	pend  map[string]int    // pending writes: key → index in order and vals
	order []string          // pending keys in first-write order
	vals  [][]byte          // their values; nil = delete

	// Scratch reused by every storage call.
	opv []storage.Operation
	ops []*storage.Operation // pointers into opv
	idx []int32
}

// Open loads the dataset registry and run registry from client. observe,
// if set, receives the latency of every storage call ("read" or "write").
func Open(ctx context.Context, client storage.Client, observe func(op string, d time.Duration)) (*Store, error) {
	if observe == nil {
		observe = func(string, time.Duration) {}
	}
	s := &Store{client: client, observe: observe}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) load(ctx context.Context) error {
	s.metas, s.tails, s.runs, s.seen = map[string]*Meta{}, map[string][]byte{}, map[uint64]*Run{}, map[uint64]int64{}
	s.pend, s.order, s.vals = map[string]int{}, nil, nil
	vals, err := s.Get(ctx, registryKey, runsKey)
	if err != nil {
		return err
	}
	var ids []string
	if vals[0] != nil {
		if err := json.Unmarshal(vals[0], &ids); err != nil {
			return fmt.Errorf("cdc state: dataset registry: %w", err)
		}
	}
	if vals[1] != nil {
		var runs map[string]int64
		if err := json.Unmarshal(vals[1], &runs); err != nil {
			return fmt.Errorf("cdc state: run registry: %w", err)
		}
		for k, t := range runs {
			if id, err := strconv.ParseUint(k, 16, 64); err == nil {
				s.seen[id] = t
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = metaKey(id)
	}
	metas, err := s.Get(ctx, keys...)
	if err != nil {
		return err
	}
	for i, b := range metas {
		m := &Meta{}
		if b != nil {
			if err := json.Unmarshal(b, m); err != nil {
				return fmt.Errorf("cdc state: dataset %s meta: %w", ids[i], err)
			}
		}
		s.metas[ids[i]] = m
	}
	return nil
}

// Reset drops pending writes and caches and reloads them from storage. The
// processor calls it after a failed Flush so memory matches storage again.
func (s *Store) Reset(ctx context.Context) error { return s.load(ctx) }

// Get reads keys in one storage Batch; a missing key gives nil. Pending
// writes are visible. (Sorting the keys was measured: it did not make bbolt
// faster, and it costs ~0.2 µs per key.)
func (s *Store) Get(ctx context.Context, keys ...string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	idx := s.idx[:0]
	for i, k := range keys {
		if len(s.pend) > 0 {
			if j, ok := s.pend[k]; ok {
				out[i] = s.vals[j]
				continue
			}
		}
		idx = append(idx, int32(i))
	}
	s.idx = idx
	if len(idx) == 0 {
		return out, nil
	}
	ops := s.operations(len(idx))
	for j, i := range idx {
		ops[j].Key, ops[j].Type = keys[i], storage.Get
	}
	start := time.Now()
	err := s.client.Batch(ctx, ops...)
	s.observe("read", time.Since(start))
	if err != nil {
		s.releaseOps(len(idx))
		return nil, fmt.Errorf("cdc state read: %w", err)
	}
	for j, i := range idx {
		out[i] = ops[j].Value
	}
	s.releaseOps(len(idx))
	return out, nil
}

// operations returns n zeroed operations for one storage call, from arrays
// reused across calls (Store is not used concurrently).
func (s *Store) operations(n int) []*storage.Operation {
	if cap(s.opv) < n {
		s.opv = make([]storage.Operation, n)
		s.ops = make([]*storage.Operation, n)
		for i := range s.ops {
			s.ops[i] = &s.opv[i]
		}
	}
	return s.ops[:n]
}

// releaseOps clears the first n operations so the reused arrays keep no
// keys or values alive.
func (s *Store) releaseOps(n int) { clear(s.opv[:n]) }

// Put buffers a write.
func (s *Store) Put(key string, v []byte) {
	if v == nil {
		v = []byte{}
	}
	s.buffer(key, v)
}

// Delete buffers a delete.
func (s *Store) Delete(key string) { s.buffer(key, nil) }

func (s *Store) buffer(key string, v []byte) {
	if j, ok := s.pend[key]; ok {
		s.vals[j] = v
		return
	}
	s.pend[key] = len(s.order)
	s.order = append(s.order, key)
	s.vals = append(s.vals, v)
}

// Pending is the number of buffered writes.
func (s *Store) Pending() int { return len(s.order) }

// Flush applies the buffered writes in one storage Batch.
func (s *Store) Flush(ctx context.Context) error {
	if len(s.order) == 0 {
		return nil
	}
	ops := s.operations(len(s.order))
	for i, op := range ops {
		op.Key = s.order[i]
		if v := s.vals[i]; v == nil {
			op.Type = storage.Delete
		} else {
			op.Type, op.Value = storage.Set, v
		}
	}
	start := time.Now()
	err := s.client.Batch(ctx, ops...)
	s.observe("write", time.Since(start))
	s.releaseOps(len(ops))
	if err != nil {
		return fmt.Errorf("cdc state write: %w", err)
	}
	clear(s.pend)
	clear(s.vals) // let the written values go
	s.order, s.vals = s.order[:0], s.vals[:0]
	return nil
}

// Meta returns the meta of dataset ds, registering the dataset when new.
func (s *Store) Meta(ds, role, namespace, name string) *Meta {
	if m, ok := s.metas[ds]; ok {
		return m
	}
	m := &Meta{Role: role, Namespace: namespace, Name: name}
	s.metas[ds] = m
	s.SaveMeta(ds)
	s.saveRegistry()
	return m
}

// Known returns the meta of a dataset seen before, or nil.
func (s *Store) Known(ds string) *Meta { return s.metas[ds] }

// SaveMeta buffers the write of dataset ds's meta.
func (s *Store) SaveMeta(ds string) {
	b, _ := json.Marshal(s.metas[ds])
	s.Put(metaKey(ds), b)
}

func (s *Store) saveRegistry() {
	ids := make([]string, 0, len(s.metas))
	for id := range s.metas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b, _ := json.Marshal(ids)
	s.Put(registryKey, b)
}

// Keys returns the number of live and deleted-but-kept keys over all datasets.
func (s *Store) Keys() (live, tombs uint64) {
	for _, m := range s.metas {
		live += m.Live
		tombs += m.Tombs
	}
	return live, tombs
}

// AppendKey adds k to the end of dataset ds's key index and returns its slot.
func (s *Store) AppendKey(ctx context.Context, ds string, k KeyHash) (uint64, error) {
	m := s.metas[ds]
	slot := m.Slots
	chunk := slot / ChunkSize
	tail, ok := s.tails[ds]
	if !ok || slot%ChunkSize == 0 {
		// The tail buffer has a full chunk's capacity so appends happen in
		// place (storage clients copy values on Set).
		buf := make([]byte, 0, ChunkSize*keyHashLen)
		if slot%ChunkSize != 0 {
			vals, err := s.Get(ctx, chunkKey(ds, chunk))
			if err != nil {
				return 0, err
			}
			buf = append(buf, vals[0]...)
		}
		tail = buf
	}
	off := int(slot%ChunkSize) * keyHashLen
	if len(tail) < off {
		// Positions without a key hash are stale entries to the scan.
		tail = append(tail, make([]byte, off-len(tail))...)
	}
	tail = append(tail[:off], k[:]...)
	s.tails[ds] = tail
	s.Put(chunkKey(ds, chunk), tail)
	m.Slots++
	s.SaveMeta(ds)
	return slot, nil
}

// Chunks returns the number of index chunks of dataset ds.
func (s *Store) Chunks(ds string) uint64 {
	m := s.metas[ds]
	if m == nil {
		return 0
	}
	return (m.Slots + ChunkSize - 1) / ChunkSize
}

// ReadChunk returns the key hashes stored in index chunk n of dataset ds.
func (s *Store) ReadChunk(ctx context.Context, ds string, n uint64) ([]KeyHash, error) {
	vals, err := s.Get(ctx, chunkKey(ds, n))
	if err != nil {
		return nil, err
	}
	b := vals[0]
	out := make([]KeyHash, 0, len(b)/keyHashLen)
	for i := 0; i+keyHashLen <= len(b); i += keyHashLen {
		var k KeyHash
		copy(k[:], b[i:i+keyHashLen])
		out = append(out, k)
	}
	return out, nil
}

// WriteChunk buffers index chunk n of dataset ds (used by compaction).
func (s *Store) WriteChunk(ds string, n uint64, keys []KeyHash) {
	b := make([]byte, 0, len(keys)*keyHashLen)
	for _, k := range keys {
		b = append(b, k[:]...)
	}
	s.Put(chunkKey(ds, n), b)
}

// DeleteChunk buffers the removal of index chunk n of dataset ds.
func (s *Store) DeleteChunk(ds string, n uint64) { s.Delete(chunkKey(ds, n)) }

// SetSlots sets the index length of dataset ds after compaction.
func (s *Store) SetSlots(ds string, slots uint64) {
	s.metas[ds].Slots = slots
	delete(s.tails, ds)
	s.SaveMeta(ds)
}

// Run returns the state of run id, creating it when new.
func (s *Store) Run(ctx context.Context, id uint64, batchID string) (*Run, error) {
	if r, ok := s.runs[id]; ok {
		return r, nil
	}
	vals, err := s.Get(ctx, runKey(id))
	if err != nil {
		return nil, err
	}
	return s.LoadRun(id, batchID, vals[0])
}

// RunLoaded reports whether run id's state is in memory (Run needs no
// storage call).
func (s *Store) RunLoaded(id uint64) bool {
	_, ok := s.runs[id]
	return ok
}

// RunKey is the storage key of run id: a caller reading other keys can read
// the run's state in the same storage call and hand it to LoadRun.
func RunKey(id uint64) string { return runKey(id) }

// LoadRun returns the state of run id from its stored value v (nil: new
// run), unless the run is in memory already.
func (s *Store) LoadRun(id uint64, batchID string, v []byte) (*Run, error) {
	if r, ok := s.runs[id]; ok {
		return r, nil
	}
	r := &Run{BatchID: batchID}
	if v != nil {
		if err := json.Unmarshal(v, r); err != nil {
			return nil, fmt.Errorf("cdc state: run %s: %w", batchID, err)
		}
	}
	r.ID = id
	s.runs[id] = r
	return r, nil
}

// SaveRun buffers the write of run r.
func (s *Store) SaveRun(r *Run, now time.Time) {
	r.Updated = now.UTC()
	b, _ := json.Marshal(r)
	s.Put(runKey(r.ID), b)
	if _, ok := s.seen[r.ID]; !ok || s.seen[r.ID] != now.Unix() {
		s.seen[r.ID] = now.Unix()
		s.saveRuns()
	}
}

// saveRuns buffers the run registry: the JSON object {"<run id hex>":
// <unix seconds>} that load reads (members in map order; encoding/json
// sorted them). It is encoded by hand: it is rewritten for almost every
// incoming batch and holds every run of the last run_ttl, and encoding/json
// of a map took ~0.5 µs per run (1 ms per batch with 2000 runs).
func (s *Store) saveRuns() {
	b := make([]byte, 0, 2+len(s.seen)*32)
	b = append(b, '{')
	for id, t := range s.seen {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendUint(b, id, 16)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, t, 10)
	}
	b = append(b, '}')
	s.Put(runsKey, b)
}

// ExpireRuns forgets runs not updated since before cutoff (their batch end
// never came, or came long ago) and returns how many it removed.
func (s *Store) ExpireRuns(cutoff time.Time) int {
	n := 0
	for id, t := range s.seen {
		if t < cutoff.Unix() {
			delete(s.seen, id)
			delete(s.runs, id)
			s.Delete(runKey(id))
			n++
		}
	}
	if n > 0 {
		s.saveRuns()
	}
	return n
}

// Runs returns the number of runs kept.
func (s *Store) Runs() int { return len(s.seen) }

package journalextension

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/journal"
)

// positionKey holds the journal offset the committed state reflects. Client
// keys always start with a component kind, never with 0x00.
const positionKey = "\x00journal/position"

// With a Kafka source the state is kept per partition: every key starts
// with partitionMark and the partition number (4 bytes, big endian), then
// the client's key, or timeKey, the journal's own (the time of the
// partition's last delivered record).
const (
	partitionMark = 0x01
	timeKey       = "\x00journal/time"
)

// partitionPrefix is the start of partition p's keys.
func partitionPrefix(p int32) string {
	var b [5]byte
	b[0] = partitionMark
	binary.BigEndian.PutUint32(b[1:], uint32(p))
	return string(b[:])
}

// partitionOf splits a partitioned key into its partition and the rest.
func partitionOf(key string) (int32, string, bool) {
	if len(key) < 5 || key[0] != partitionMark {
		return 0, "", false
	}
	return int32(binary.BigEndian.Uint32([]byte(key[1:5]))), key[5:], true
}

// stateStore is the processors' state: a pebble database holding the state
// as of the last checkpoint, and in memory every write since (coalesced per
// key), read through by clients. A checkpoint commits those writes together
// with the journal position in one atomic pebble batch; a rollback drops
// them. Pebble is a log-structured engine: state written at random keys
// costs sequential I/O, and reads of keys not written since the checkpoint
// go to its memtable, block cache and bloom filters.
type stateStore struct {
	mu     sync.Mutex
	db     *pebble.DB
	dirty  map[string]overlay
	size   int // bytes of keys and values in dirty
	closed bool
	resets []func(context.Context) error
	// partitioned: keys are namespaced by the delivery's partition (a
	// Kafka source); otherwise every delivery is partition 0 and keys are
	// as they always were.
	partitioned bool
}

// overlay is a write since the last checkpoint: a value, or a deletion.
type overlay struct {
	value   []byte
	deleted bool
}

func openState(dir string, cfg *Config, logger *zap.Logger) (*stateStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cfg.StateCacheMiB << 20)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: uint64(cfg.StateMemtableMiB) << 20,
		Logger:       pebbleLogger{logger.Named("pebble")},
	}
	// Most reads are of keys written long ago or never (a CDC insert looks
	// its key up first): a Bloom filter per table answers "not here"
	// without reading the table's index.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("journal: open the state in %s: %w", dir, err)
	}
	return &stateStore{db: db, dirty: map[string]overlay{}}, nil
}

// position returns the journal offset of the last checkpoint (0 if none).
func (s *stateStore) position() (int64, error) {
	v, closer, err := s.db.Get([]byte(positionKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("journal: the stored position is %d bytes, want 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// dirtyBytes is the size of the writes since the last checkpoint.
func (s *stateStore) dirtyBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// commit makes every write since the last checkpoint durable together with
// pos: all of it or, after a crash, none of it.
func (s *stateStore) commit(pos int64, sync bool) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(pos))
	return s.flush(sync, func(b *pebble.Batch) error { return b.Set([]byte(positionKey), v[:], nil) })
}

// flush writes every write since the last checkpoint to pebble, with
// whatever extra adds, in one atomic batch.
func (s *stateStore) flush(sync bool, extra func(*pebble.Batch) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for k, o := range s.dirty {
		var err error
		if o.deleted {
			err = b.Delete([]byte(k), nil)
		} else {
			err = b.Set([]byte(k), o.value, nil)
		}
		if err != nil {
			return err
		}
	}
	if extra != nil {
		if err := extra(b); err != nil {
			return err
		}
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		// Pebble commits all or nothing; the writes stay in memory and the
		// caller rolls back and delivers again.
		return fmt.Errorf("journal: checkpoint commit: %w", err)
	}
	clear(s.dirty)
	s.size = 0
	return nil
}

// change is one write since the last checkpoint of a partition: a client
// key (without the partition prefix) and its value, nil for a deletion.
type change struct {
	key   string
	value []byte
}

// changes returns the writes since the last checkpoint per partition (a
// partitioned store), each partition's in key order.
func (s *stateStore) changes() map[int32][]change {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int32][]change{}
	for k, o := range s.dirty {
		p, rest, ok := partitionOf(k)
		if !ok {
			continue
		}
		c := change{key: rest}
		if !o.deleted {
			c.value = o.value
		}
		out[p] = append(out[p], c)
	}
	for _, cs := range out {
		sort.Slice(cs, func(i, j int) bool { return cs[i].key < cs[j].key })
	}
	return out
}

// dropPartition forgets partition p: its writes since the checkpoint and
// its committed state.
func (s *stateStore) dropPartition(p int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := partitionPrefix(p)
	for k, o := range s.dirty {
		if strings.HasPrefix(k, prefix) {
			s.size -= len(k) + len(o.value)
			delete(s.dirty, k)
		}
	}
	return s.db.DeleteRange([]byte(prefix), []byte(partitionPrefix(p+1)), pebble.NoSync)
}

// dropAll deletes everything committed (a partitioned store's cache, which
// the changelog rebuilds per partition when it is assigned).
func (s *stateStore) dropAll() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.dirty)
	s.size = 0
	return s.db.DeleteRange([]byte{0}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, pebble.NoSync)
}

// restore commits partition p's state read from its changelog: cs in
// changelog order (later ones win; nil deletes).
func (s *stateStore) restore(p int32, cs []change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	prefix := partitionPrefix(p)
	for _, c := range cs {
		var err error
		if c.value == nil {
			err = b.Delete([]byte(prefix+c.key), nil)
		} else {
			err = b.Set([]byte(prefix+c.key), c.value, nil)
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// rollback discards every write since the last checkpoint.
func (s *stateStore) rollback() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.dirty)
	s.size = 0
}

// reset runs the owners' reset callbacks after a rollback.
func (s *stateStore) reset(ctx context.Context) error {
	s.mu.Lock()
	fns := append([]func(context.Context) error(nil), s.resets...)
	s.mu.Unlock()
	var errs []error
	for _, fn := range fns {
		errs = append(errs, fn(ctx))
	}
	return errors.Join(errs...)
}

func (s *stateStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.dirty = nil
	return s.db.Close()
}

// get reads key through the writes since the last checkpoint. The value is
// the caller's (a copy).
func (s *stateStore) get(key string) ([]byte, error) {
	if o, ok := s.dirty[key]; ok {
		if o.deleted {
			return nil, nil
		}
		return append([]byte(nil), o.value...), nil
	}
	v, closer, err := s.db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, closer.Close()
}

// getKey and putKey read and write one key of the journal's own.
func (s *stateStore) getKey(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	return s.get(key)
}

func (s *stateStore) putKey(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	s.put(key, overlay{value: append([]byte(nil), value...)})
	return nil
}

func (s *stateStore) put(key string, o overlay) {
	if old, ok := s.dirty[key]; ok {
		s.size -= len(key) + len(old.value)
	}
	s.dirty[key] = o
	s.size += len(key) + len(o.value)
}

// client is a component's view of the state: its keys live under its own
// prefix, its writes wait for the next checkpoint.
type client struct {
	s      *stateStore
	prefix string
}

var _ journal.Client = (*client)(nil)

// key is the store key of k: under the delivery's partition when the
// store is partitioned.
func (c *client) key(ctx context.Context, k string) string {
	if c.s.partitioned {
		return partitionPrefix(journal.PartitionOf(ctx)) + c.prefix + k
	}
	return c.prefix + k
}

func (c *client) Get(ctx context.Context, key string) ([]byte, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.closed {
		return nil, errClosed
	}
	return c.s.get(c.key(ctx, key))
}

func (c *client) Set(ctx context.Context, key string, value []byte) error {
	return c.Batch(ctx, storage.SetOperation(key, value))
}

func (c *client) Delete(ctx context.Context, key string) error {
	return c.Batch(ctx, storage.DeleteOperation(key))
}

func (c *client) Batch(ctx context.Context, ops ...*storage.Operation) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.closed {
		return errClosed
	}
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			v, err := c.s.get(c.key(ctx, op.Key))
			if err != nil {
				return err
			}
			op.Value = v
		case storage.Set:
			// The storage API does not say callers leave values alone.
			c.s.put(c.key(ctx, op.Key), overlay{value: append([]byte(nil), op.Value...)})
		case storage.Delete:
			c.s.put(c.key(ctx, op.Key), overlay{deleted: true})
		default:
			return fmt.Errorf("journal: unknown storage operation %d", op.Type)
		}
	}
	return nil
}

// Close is a no-op: the state belongs to the journal, which commits it at
// checkpoints and closes it at shutdown.
func (c *client) Close(context.Context) error { return nil }

func (c *client) OnReset(fn func(context.Context) error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.resets = append(c.s.resets, fn)
}

var errClosed = errors.New("journal: the state is closed")

// pebbleLogger sends pebble's messages to the collector's logger.
type pebbleLogger struct{ l *zap.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf for corruption it cannot continue from.
	p.l.Fatal(fmt.Sprintf(format, args...))
}

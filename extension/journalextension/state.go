package journalextension

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/journal"
)

// positionKey holds the journal offset the committed state reflects. Client
// keys always start with a component kind, never with 0x00.
const positionKey = "\x00journal/position"

// stateStore is the processors' state: a pebble database holding the state
// as of the last checkpoint, and an indexed batch holding every write since,
// read through by clients. A checkpoint commits the batch together with the
// journal position in one atomic write; a rollback discards it. Pebble is a
// log-structured engine: state written at random keys costs sequential I/O.
type stateStore struct {
	mu     sync.Mutex
	db     *pebble.DB
	batch  *pebble.Batch
	resets []func(context.Context) error
}

func openState(dir string, logger *zap.Logger) (*stateStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(32 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		Cache:        cache,
		MemTableSize: 16 << 20,
		Logger:       pebbleLogger{logger.Named("pebble")},
	})
	if err != nil {
		return nil, fmt.Errorf("journal: open the state in %s: %w", dir, err)
	}
	return &stateStore{db: db, batch: db.NewIndexedBatch()}, nil
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

// dirty is the size of the writes since the last checkpoint.
func (s *stateStore) dirty() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batch.Len()
}

// commit makes every write since the last checkpoint durable together with
// pos: all of it or, after a crash, none of it.
func (s *stateStore) commit(pos int64, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(pos))
	if err := s.batch.Set([]byte(positionKey), v[:], nil); err != nil {
		return err
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := s.batch.Commit(opt); err != nil {
		// The batch may be half applied to nothing: pebble commits all or
		// nothing. Keep a fresh batch so the caller can roll back and retry.
		_ = s.batch.Close()
		s.batch = s.db.NewIndexedBatch()
		return fmt.Errorf("journal: checkpoint commit: %w", err)
	}
	_ = s.batch.Close()
	s.batch = s.db.NewIndexedBatch()
	return nil
}

// rollback discards every write since the last checkpoint.
func (s *stateStore) rollback() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.batch.Close()
	s.batch = s.db.NewIndexedBatch()
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
	if s.batch != nil {
		_ = s.batch.Close()
		s.batch = nil
	}
	return s.db.Close()
}

func (s *stateStore) get(key []byte) ([]byte, error) {
	v, closer, err := s.batch.Get(key)
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

// client is a component's view of the state: its keys live under its own
// prefix, its writes wait for the next checkpoint.
type client struct {
	s      *stateStore
	prefix string
}

var _ journal.Client = (*client)(nil)

func (c *client) key(k string) []byte { return []byte(c.prefix + k) }

func (c *client) Get(_ context.Context, key string) ([]byte, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.batch == nil {
		return nil, errClosed
	}
	return c.s.get(c.key(key))
}

func (c *client) Set(ctx context.Context, key string, value []byte) error {
	return c.Batch(ctx, storage.SetOperation(key, value))
}

func (c *client) Delete(ctx context.Context, key string) error {
	return c.Batch(ctx, storage.DeleteOperation(key))
}

func (c *client) Batch(_ context.Context, ops ...*storage.Operation) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.batch == nil {
		return errClosed
	}
	for _, op := range ops {
		var err error
		switch op.Type {
		case storage.Get:
			op.Value, err = c.s.get(c.key(op.Key))
		case storage.Set:
			err = c.s.batch.Set(c.key(op.Key), op.Value, nil)
		case storage.Delete:
			err = c.s.batch.Delete(c.key(op.Key), nil)
		default:
			err = fmt.Errorf("journal: unknown storage operation %d", op.Type)
		}
		if err != nil {
			return err
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

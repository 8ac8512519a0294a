package state

import (
	"context"
	"errors"
	"sync"

	"go.opentelemetry.io/collector/extension/xextension/storage"
)

// MemoryClient is a storage.Client kept in process memory. cdcprocessor uses
// it when no storage extension is configured (state is then lost on
// restart, and the processor says so at start); tests and benchmarks use it
// to measure the processor without disk I/O.
type MemoryClient struct {
	mu     sync.Mutex
	data   map[string][]byte
	closed bool
}

// NewMemoryClient returns an empty in-memory client.
func NewMemoryClient() *MemoryClient { return &MemoryClient{data: map[string][]byte{}} }

var _ storage.Client = (*MemoryClient)(nil)

var errClosed = errors.New("memory storage client is closed")

// Get returns the value of key, or nil. The value is shared with the
// client: callers must not modify it (Store never does; Set stores copies,
// so a stored value never changes).
func (c *MemoryClient) Get(ctx context.Context, key string) ([]byte, error) {
	op := storage.GetOperation(key)
	err := c.Batch(ctx, op)
	return op.Value, err
}

// Set stores a copy of value.
func (c *MemoryClient) Set(ctx context.Context, key string, value []byte) error {
	return c.Batch(ctx, storage.SetOperation(key, value))
}

// Delete removes key.
func (c *MemoryClient) Delete(ctx context.Context, key string) error {
	return c.Batch(ctx, storage.DeleteOperation(key))
}

// Batch applies ops in order, atomically with respect to other calls.
func (c *MemoryClient) Batch(_ context.Context, ops ...*storage.Operation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	for _, op := range ops {
		switch op.Type {
		case storage.Get:
			if v, ok := c.data[op.Key]; ok {
				op.Value = v[:len(v):len(v)]
			} else {
				op.Value = nil
			}
		case storage.Set:
			c.data[op.Key] = append([]byte(nil), op.Value...)
		case storage.Delete:
			delete(c.data, op.Key)
		default:
			return errors.New("unknown storage operation type")
		}
	}
	return nil
}

// Close marks the client closed; later calls fail.
func (c *MemoryClient) Close(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// Len returns the number of stored keys.
func (c *MemoryClient) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.data)
}

// Each calls fn with every stored key and value (tests scan raw state bytes).
func (c *MemoryClient) Each(fn func(key string, value []byte)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.data {
		fn(k, v)
	}
}

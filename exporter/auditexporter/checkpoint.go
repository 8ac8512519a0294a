package auditexporter

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// CheckpointsConfig configures signed checkpoints of the stream's Merkle log.
type CheckpointsConfig struct {
	// KeyFiles are the signer keys (batchaudit keygen; mode 0600). More
	// than one co-signs every checkpoint: the way to rotate a key.
	KeyFiles []string `mapstructure:"key_files"`
	// Interval is the longest a stored event waits for a checkpoint.
	Interval time.Duration `mapstructure:"interval"`
	// MaxEvents signs earlier once this many events were stored since the
	// last checkpoint.
	MaxEvents int64 `mapstructure:"max_events"`
	// OriginPrefix: the checkpoints of stream S have origin OriginPrefix+S.
	OriginPrefix string `mapstructure:"origin_prefix"`
	// File is where every checkpoint is also appended (JSON lines), to be
	// kept where the store's administrators cannot rewrite it.
	File string `mapstructure:"file"`
	// PostURL, when set, receives every checkpoint note by HTTP POST (a
	// witness or a second archive).
	PostURL string `mapstructure:"post_url"`

	_ struct{}
}

func (c *CheckpointsConfig) enabled() bool { return len(c.KeyFiles) > 0 }

// checkpointer signs the stream's tree after the events it covers are
// stored, at most every interval or max_events and at shutdown, and only
// after proving the tree consistent with the previous checkpoint: an
// inconsistent tree is an integrity alarm and signing stops.
type checkpointer struct {
	cfg    CheckpointsConfig
	stream string
	origin string
	logger *zap.Logger
	tel    *checkpointTelemetry
	client *http.Client

	signers []note.Signer

	mu       sync.Mutex
	loaded   bool      // last was read from the store
	last     tlog.Tree // the latest checkpoint signed or found
	lastTime time.Time
	pending  int64     // events stored since the latest checkpoint
	stopped  error     // set when an inconsistency stopped signing
	lastTry  time.Time // the last signing due (a partition's stream)

	stop chan struct{}
	done chan struct{}
}

type checkpointTelemetry struct {
	failures func(ctx context.Context, reason string)
	alarm    func(ctx context.Context)
}

func newCheckpointer(cfg CheckpointsConfig, stream string, logger *zap.Logger, tel *checkpointTelemetry) (*checkpointer, error) {
	c := &checkpointer{cfg: cfg, stream: stream, origin: cfg.OriginPrefix + stream, logger: logger, tel: tel,
		client: &http.Client{Timeout: 10 * time.Second}}
	for _, f := range cfg.KeyFiles {
		s, err := signing.LoadSigner(f)
		if err != nil {
			return nil, err
		}
		c.signers = append(c.signers, s)
	}
	return c, nil
}

// forStream is a checkpointer of another stream with the same keys and
// settings (a partition's stream); it signs when told (due), without a
// timer.
func (c *checkpointer) forStream(stream string) *checkpointer {
	return &checkpointer{cfg: c.cfg, stream: stream, origin: c.cfg.OriginPrefix + stream, logger: c.logger, tel: c.tel,
		client: c.client, signers: c.signers, lastTry: time.Now()}
}

// due counts n newly stored entries and reports whether a checkpoint is
// due: max_events wait, or some wait since interval.
func (c *checkpointer) due(n int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending += n
	if c.pending == 0 && c.loaded {
		return false
	}
	if (c.cfg.MaxEvents > 0 && c.pending >= c.cfg.MaxEvents) || time.Since(c.lastTry) >= c.cfg.Interval {
		c.lastTry = time.Now()
		return true
	}
	return false
}

// start starts the timer. The latest kept checkpoint is read at the first
// signing, so that a store that is down does not keep the collector from
// starting.
func (c *checkpointer) start(s store.Store) {
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.loop(s)
}

// load reads the latest kept checkpoint: the tree must stay consistent with it.
func (c *checkpointer) load(ctx context.Context, s store.Store) error {
	kept, err := s.Checkpoints(ctx, c.stream)
	if err != nil {
		return err
	}
	if n := len(kept); n > 0 {
		cp, _, err := merkle.Open([]byte(kept[n-1].Note), c.verifiers())
		if err != nil {
			// Signed by a key we no longer hold (rotated out): still a
			// statement this tree must stay consistent with.
			if cp, err = merkle.ParseBody(merkle.Text(kept[n-1].Note)); err != nil {
				return fmt.Errorf("the latest kept checkpoint does not parse: %w", err)
			}
		}
		c.last, c.lastTime = cp.Tree(), kept[n-1].Created
	}
	c.loaded = true
	return nil
}

func (c *checkpointer) loop(s store.Store) {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Interval)
			_ = c.sign(ctx, s, false)
			cancel()
		}
	}
}

// stored is told how many events a write stored; it signs at once when
// max_events is reached.
func (c *checkpointer) stored(ctx context.Context, s store.Store, n int64) {
	c.mu.Lock()
	c.pending += n
	due := c.cfg.MaxEvents > 0 && c.pending >= c.cfg.MaxEvents
	c.mu.Unlock()
	if due {
		_ = c.sign(ctx, s, false)
	}
}

// shutdown stops the timer and signs the final checkpoint.
func (c *checkpointer) shutdown(ctx context.Context, s store.Store) error {
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
	}
	return c.sign(ctx, s, true)
}

// sign signs the stream's current tree if it grew since the latest
// checkpoint (or, final, to mark a clean stop).
func (c *checkpointer) sign(ctx context.Context, s store.Store, final bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped != nil {
		return c.stopped
	}
	if !c.loaded {
		if err := c.load(ctx, s); err != nil {
			c.fail(ctx, "tree", err)
			return err
		}
	}
	tree, err := s.Tree(ctx, c.stream)
	if err != nil {
		c.fail(ctx, "tree", err)
		return err
	}
	if tree.N == c.last.N && tree.Hash == c.last.Hash && !final {
		c.pending = 0
		return nil
	}
	if tree.N == 0 {
		return nil
	}
	if tree.N == c.last.N && tree.Hash != c.last.Hash || tree.N < c.last.N {
		return c.inconsistent(ctx, tree, fmt.Errorf("%w: size %d, root %x after size %d, root %x", merkle.ErrInconsistent, tree.N, tree.Hash, c.last.N, c.last.Hash))
	}
	if c.last.N > 0 && tree.N > c.last.N {
		head, err := s.Head(ctx, c.stream)
		if err != nil {
			c.fail(ctx, "tiles", err)
			return err
		}
		if err := merkle.CheckConsistency(tree, c.last, tlog.TileHashReader(tree, head.Tiles)); err != nil {
			if errors.Is(err, merkle.ErrInconsistent) {
				return c.inconsistent(ctx, tree, err)
			}
			c.fail(ctx, "consistency_proof", err)
			return err
		}
	}
	cp := merkle.Checkpoint{Origin: c.origin, Size: tree.N, Root: tree.Hash}
	msg, err := cp.Sign(c.signers...)
	if err != nil {
		c.fail(ctx, "sign", err)
		return err
	}
	now := time.Now().UTC()
	if err := s.PutCheckpoint(ctx, store.StoredCheckpoint{Stream: c.stream, Size: tree.N, Root: hex.EncodeToString(tree.Hash[:]),
		Note: string(msg), Created: now}); err != nil {
		c.fail(ctx, "store", err)
		return err
	}
	if err := c.publish(ctx, msg, final); err != nil {
		c.fail(ctx, "publish", err)
		return err
	}
	c.last, c.lastTime, c.pending = tree, now, 0
	return nil
}

func (c *checkpointer) inconsistent(ctx context.Context, tree tlog.Tree, err error) error {
	c.stopped = fmt.Errorf("checkpoint signing stopped: %w", err)
	c.tel.alarm(ctx)
	c.logger.Error("Integrity alarm: the stream's Merkle tree is not consistent with its previous checkpoint; no further checkpoints are signed",
		zap.String("stream", c.stream), zap.Int64("size", tree.N), zap.Int64("previous_size", c.last.N), zap.Error(err))
	return c.stopped
}

func (c *checkpointer) fail(ctx context.Context, reason string, err error) {
	c.tel.failures(ctx, reason)
	c.logger.Warn("Could not sign a checkpoint; trying again at the next interval", zap.String("stream", c.stream),
		zap.String("step", reason), zap.Error(err))
}

// publish appends the checkpoint to the file (and syncs it) and posts it.
func (c *checkpointer) publish(ctx context.Context, msg []byte, final bool) error {
	cp, err := merkle.ParseBody(merkle.Text(string(msg)))
	if err != nil {
		return err
	}
	if c.cfg.File != "" {
		if err := merkle.AppendPublished(c.cfg.File, merkle.Published{Stream: c.stream, Size: cp.Size, Note: string(msg), Final: final}); err != nil {
			return err
		}
	}
	if c.cfg.PostURL != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.PostURL, bytes.NewReader(msg))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, err := c.client.Do(req)
		if err != nil {
			return fmt.Errorf("post to %s: %w", c.cfg.PostURL, err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("post to %s: HTTP %d", c.cfg.PostURL, resp.StatusCode)
		}
	}
	return nil
}

// verifiers are the public halves of the configured signer keys.
func (c *checkpointer) verifiers() note.Verifiers {
	var vs []note.Verifier
	for _, f := range c.cfg.KeyFiles {
		if v, err := signing.VerifierOf(f); err == nil {
			vs = append(vs, v)
		}
	}
	return note.VerifierList(vs...)
}

// age is how long ago the latest checkpoint was signed (0 without one).
func (c *checkpointer) age() (time.Duration, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastTime.IsZero() {
		return 0, c.last.N
	}
	return time.Since(c.lastTime), c.last.N
}

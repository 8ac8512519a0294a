package journalextension

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/extension/journalextension/internal/metadata"
	"github.com/batchaudit/batchaudit/extension/journalextension/internal/wal"
	"github.com/batchaudit/batchaudit/journal"
)

type journalExt struct {
	cfg    *Config
	logger *zap.Logger
	tb     *metadata.TelemetryBuilder

	log   *wal.Log
	state *stateStore

	mu sync.Mutex
	// checkpoint is the journal offset the committed state reflects:
	// everything before it was delivered and stored.
	checkpoint int64
	attached   bool
	// drainTo is the offset a Drain waits for (-1: none); drained is
	// closed when delivery reached it.
	drainTo   int64
	drained   chan struct{}
	delivered int64 // offset after the last successful delivery
	// delivering is held by Deliver, so Shutdown closes nothing under it.
	delivering sync.Mutex

	// kafka is the Kafka source (kafka configured); log is nil then.
	kafka *kafkaSource
	// wake interrupts the Kafka source's poll (a drain began).
	wake context.CancelFunc

	// memLimit is the Go runtime's memory limit this journal set (nil:
	// none), undone at shutdown.
	memLimit *memoryLimit
}

var (
	_ storage.Extension = (*journalExt)(nil)
	_ journal.Journal   = (*journalExt)(nil)
)

func newJournal(cfg *Config, set extension.Settings) (*journalExt, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &journalExt{cfg: cfg, logger: set.Logger, tb: tb, drainTo: -1, drained: make(chan struct{})}, nil
}

func (j *journalExt) Start(ctx context.Context, _ component.Host) error {
	j.memLimit = startMemoryLimit(j.cfg.GoMemoryLimitMiB, j.logger)
	if kc := j.cfg.Kafka.Get(); kc != nil {
		return j.startKafka(kc)
	}
	log, err := wal.Open(wal.Options{
		Dir:          filepath.Join(j.cfg.Directory, "journal"),
		SegmentBytes: j.cfg.SegmentMiB << 20,
		Fsync:        j.cfg.Fsync,
		MaxBacklog:   j.cfg.MaxBacklogMiB << 20,
		OnCommit: func(records, _ int, d time.Duration) {
			j.tb.JournalAppended.Add(context.Background(), int64(records))
			j.tb.JournalCommitDuration.Record(context.Background(), d.Seconds())
		},
	})
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", j.cfg.Directory, err)
	}
	st, err := openState(filepath.Join(j.cfg.Directory, "state"), j.cfg, j.logger)
	if err != nil {
		return errors.Join(err, log.Close())
	}
	pos, err := st.position()
	if err == nil {
		err = checkPosition(pos, log.Start(), log.End())
	}
	if err != nil {
		return errors.Join(err, st.close(), log.Close())
	}
	j.log, j.state, j.checkpoint = log, st, pos
	if pending := log.End() - pos; pending > 0 {
		j.logger.Info("Journal holds records not yet checkpointed as delivered; they are delivered again",
			zap.Int64("bytes", pending), zap.Int64("from_offset", pos))
	}
	return j.tb.RegisterJournalBacklogCallback(func(_ context.Context, o metric.Int64Observer) error {
		o.Observe(log.Backlog())
		return nil
	})
}

// startKafka opens the state as a cache of the changelog: it starts empty,
// and each partition is read from its changelog when assigned.
func (j *journalExt) startKafka(kc *KafkaConfig) error {
	st, err := openState(filepath.Join(j.cfg.Directory, "state"), j.cfg, j.logger)
	if err != nil {
		return err
	}
	st.partitioned = true
	if err := st.dropAll(); err != nil {
		return errors.Join(fmt.Errorf("journal: clear the state cache: %w", err), st.close())
	}
	j.state, j.kafka = st, newKafkaSource(j, kc)
	return nil
}

// checkPosition refuses state and journal that do not belong together: a
// position outside the journal means one of the two directories was lost or
// replaced, and delivering from there would silently skip or repeat data.
func checkPosition(pos, start, end int64) error {
	switch {
	case pos > end:
		return fmt.Errorf("journal: the state was checkpointed at offset %d but the journal ends at %d: "+
			"the journal directory was lost or replaced; restore it, or move the state directory away to start over", pos, end)
	case pos < start:
		return fmt.Errorf("journal: the state was checkpointed at offset %d but the journal starts at %d: "+
			"the state directory was lost or replaced; restore it, or move both directories away to start over", pos, start)
	}
	return nil
}

// Shutdown closes the journal and the state. Writes made after the last
// checkpoint are discarded (they are replayed from the journal at the next
// start), except when no receiver ever delivered from this journal: then it
// served as plain storage and they are committed.
func (j *journalExt) Shutdown(context.Context) error {
	j.delivering.Lock()
	defer j.delivering.Unlock()
	defer j.tb.Shutdown()
	j.memLimit.stop()
	j.memLimit = nil
	if j.kafka != nil && j.state != nil {
		// Writes since the last checkpoint are the next owner's to redo.
		err := j.state.close()
		j.state = nil
		return err
	}
	if j.log == nil {
		return nil
	}
	var errs []error
	j.mu.Lock()
	if !j.attached && j.state.dirtyBytes() > 0 {
		errs = append(errs, j.state.commit(j.checkpoint, j.cfg.Fsync))
	}
	j.mu.Unlock()
	errs = append(errs, j.state.close(), j.log.Close())
	j.log, j.state = nil, nil
	return errors.Join(errs...)
}

// GetClient returns the state client of a component. Its writes become
// durable at the journal's next checkpoint, together with the position they
// reflect.
func (j *journalExt) GetClient(_ context.Context, kind component.Kind, id component.ID, name string) (storage.Client, error) {
	if j.state == nil {
		return nil, errors.New("journal: not started")
	}
	prefix := strings.ToLower(kind.String()) + "/" + id.String() + "/"
	if name != "" {
		prefix += name + "/"
	}
	return &client{s: j.state, prefix: prefix}, nil
}

var protoMarshaler = &plog.ProtoMarshaler{}

// Append makes ld durable in the journal.
func (j *journalExt) Append(ctx context.Context, ld plog.Logs) error {
	if j.kafka != nil {
		return fmt.Errorf("journal: this journal reads the Kafka topic %s and takes no appends: "+
			"receivers on gateways send to Kafka with the kafka exporter (docs/scale-out.md)", j.kafka.cfg.Topic)
	}
	if j.log == nil {
		return errors.New("journal: not started")
	}
	buf, err := protoMarshaler.MarshalLogs(ld)
	if err != nil {
		return fmt.Errorf("journal: encode: %w", err)
	}
	switch err := j.log.Append(ctx, buf); {
	case errors.Is(err, wal.ErrFull):
		j.tb.JournalRefused.Add(ctx, 1)
		return journal.ErrFull
	case err != nil:
		return fmt.Errorf("journal: append: %w", err)
	}
	return nil
}

package kafkaexporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/exporter/kafkaexporter/internal/metadata"
	"github.com/batchaudit/batchaudit/internal/kafkaclient"
)

type kafkaExporter struct {
	cfg    *Config
	logger *zap.Logger
	tb     *metadata.TelemetryBuilder

	mu     sync.RWMutex
	client *kgo.Client
	// ready is closed once the topic is known to exist (created if
	// needed); until then requests are refused as retryable.
	ready   chan struct{}
	readyMu sync.Mutex
	topicOK bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func newExporter(cfg *Config, set exporter.Settings) (*kafkaExporter, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &kafkaExporter{cfg: cfg, logger: set.Logger, tb: tb, ready: make(chan struct{})}, nil
}

func (e *kafkaExporter) start(_ context.Context, _ component.Host) error {
	opts := append(e.cfg.Options(e.logger),
		kgo.DefaultProduceTopic(e.cfg.Topic),
		// Every in-sync replica has the records before a request is
		// acknowledged; the producer is idempotent (franz-go's default),
		// so its own retries never write a record twice.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Keyed records go to murmur2(key) mod partitions, as in every
		// Kafka client: one job, one partition.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerBatchCompression(codec(e.cfg.Compression)),
		kgo.ProducerBatchMaxBytes(int32(e.cfg.MaxRecordBytes+64<<10)),
	)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka exporter: %w", err)
	}
	e.mu.Lock()
	e.client = client
	e.mu.Unlock()
	// The brokers may be unreachable at start: the collector starts all
	// the same and answers 503 until the topic is verified.
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go e.ensureTopic(ctx, client)
	return nil
}

// ensureTopic creates the topic if it is missing, retrying until it
// succeeds or the exporter shuts down.
func (e *kafkaExporter) ensureTopic(ctx context.Context, client *kgo.Client) {
	defer close(e.done)
	adm := kadm.NewClient(client)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := kafkaclient.EnsureTopic(tctx, adm, e.cfg.Topic, e.cfg.Partitions, e.cfg.ReplicationFactor, nil)
		cancel()
		if err == nil {
			e.logger.Info("Kafka topic ready", zap.String("topic", e.cfg.Topic), zap.Int32("partitions", n))
			close(e.ready)
			return
		}
		if ctx.Err() != nil {
			return
		}
		e.logger.Warn("Kafka topic not verified yet; requests are answered 503 until it is", zap.String("topic", e.cfg.Topic), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// shutdown is safe without start and when called twice.
func (e *kafkaExporter) shutdown(context.Context) error {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
	e.mu.Lock()
	client := e.client
	e.client = nil
	e.mu.Unlock()
	if client != nil {
		client.Close()
	}
	e.tb.Shutdown()
	return nil
}

var errNotStarted = errors.New("kafka exporter: not started or already shut down")

// push produces ld's events and returns once the brokers acknowledged every
// record: nil then, a retryable error when Kafka cannot take them now, a
// permanent one when it never will (a single event larger than a record may
// be).
func (e *kafkaExporter) push(ctx context.Context, ld plog.Logs) error {
	if ld.LogRecordCount() == 0 {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.client == nil {
		return errNotStarted
	}
	select {
	case <-e.ready:
	default:
		return fmt.Errorf("kafka exporter: topic %s not verified yet (are the brokers %v reachable?)", e.cfg.Topic, e.cfg.Brokers)
	}
	records, err := toRecords(ld, e.cfg.MaxRecordBytes)
	if err != nil {
		return consumererror.NewPermanent(err)
	}
	began := time.Now()
	results := e.client.ProduceSync(ctx, records...)
	e.tb.ExporterKafkaProduceDuration.Record(ctx, time.Since(began).Seconds())
	if err := results.FirstErr(); err != nil {
		if errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) {
			return consumererror.NewPermanent(fmt.Errorf("kafka exporter: a record is larger than the topic accepts (lower max_record_bytes below the topic's max.message.bytes): %w", err))
		}
		// Records of the request that were acknowledged stay in Kafka;
		// the client's retry sends them again and the store recognizes
		// them by event id.
		return fmt.Errorf("kafka exporter: produce to %s failed: %w", e.cfg.Topic, err)
	}
	e.tb.ExporterKafkaRecords.Add(ctx, int64(len(records)))
	return nil
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// Key returns the partitioning key of an event: its job
// (namespace/name), else its batch id, else none. Record attributes come
// first, the resource's fill in, as in auditevent.FromLogRecord.
func Key(lr plog.LogRecord, res pcommon.Resource) string {
	name := attr(lr, res, auditevent.AttrJobName)
	if name != "" {
		return attr(lr, res, auditevent.AttrJobNamespace) + "/" + name
	}
	return attr(lr, res, auditevent.AttrBatchID)
}

func attr(lr plog.LogRecord, res pcommon.Resource, k string) string {
	if v, ok := lr.Attributes().Get(k); ok {
		return v.AsString()
	}
	if v, ok := res.Attributes().Get(k); ok {
		return v.AsString()
	}
	return ""
}

var marshaler = &plog.ProtoMarshaler{}

// ref locates one log record of a request.
type ref struct{ rl, sl, lr int }

// toRecords turns a request into Kafka records: one per key (in order of
// first appearance, each keeping its events' order), split further where
// one would exceed maxBytes.
func toRecords(ld plog.Logs, maxBytes int) ([]*kgo.Record, error) {
	var keys []string
	groups := map[string][]ref{}
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				key := Key(lrs.At(k), rl.Resource())
				if _, ok := groups[key]; !ok {
					keys = append(keys, key)
				}
				groups[key] = append(groups[key], ref{i, j, k})
			}
		}
	}
	var out []*kgo.Record
	for _, key := range keys {
		var part plog.Logs
		if len(keys) == 1 {
			part = ld // the usual request: one job, no copy
		} else {
			part = subset(ld, groups[key])
		}
		recs, err := encode(ld, part, groups[key], key, maxBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// encode marshals part (the records refs of ld) as one record, or halves
// it until every record fits maxBytes.
func encode(ld, part plog.Logs, refs []ref, key string, maxBytes int) ([]*kgo.Record, error) {
	if part.LogRecordCount() == 0 {
		return nil, nil
	}
	if n := marshaler.LogsSize(part); n > maxBytes {
		if len(refs) == 1 {
			return nil, fmt.Errorf("kafka exporter: one event is %d bytes encoded, more than max_record_bytes (%d)", n, maxBytes)
		}
		h := len(refs) / 2
		a, err := encode(ld, subset(ld, refs[:h]), refs[:h], key, maxBytes)
		if err != nil {
			return nil, err
		}
		b, err := encode(ld, subset(ld, refs[h:]), refs[h:], key, maxBytes)
		return append(a, b...), err
	}
	value, err := marshaler.MarshalLogs(part)
	if err != nil {
		return nil, fmt.Errorf("kafka exporter: encode: %w", err)
	}
	r := &kgo.Record{Value: value}
	if key != "" {
		r.Key = []byte(key)
	}
	return []*kgo.Record{r}, nil
}

// subset copies the log records refs of ld, in order, under copies of
// their resources and scopes.
func subset(ld plog.Logs, refs []ref) plog.Logs {
	out := plog.NewLogs()
	var rl plog.ResourceLogs
	var sl plog.ScopeLogs
	prev := ref{-1, -1, -1}
	for _, r := range refs {
		src := ld.ResourceLogs().At(r.rl)
		if r.rl != prev.rl {
			rl = out.ResourceLogs().AppendEmpty()
			src.Resource().CopyTo(rl.Resource())
			rl.SetSchemaUrl(src.SchemaUrl())
			prev.sl = -1
		}
		ssrc := src.ScopeLogs().At(r.sl)
		if r.sl != prev.sl {
			sl = rl.ScopeLogs().AppendEmpty()
			ssrc.Scope().CopyTo(sl.Scope())
			sl.SetSchemaUrl(ssrc.SchemaUrl())
		}
		ssrc.LogRecords().At(r.lr).CopyTo(sl.LogRecords().AppendEmpty())
		prev = r
	}
	return out
}

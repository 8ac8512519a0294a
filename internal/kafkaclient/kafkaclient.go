// Package kafkaclient holds what the Kafka components of batchaudit share:
// the connection and topic settings (the gateway's kafka exporter writes the
// topic, the journal reads it; docs/scale-out.md), the topic set-up, and the
// bridge from franz-go's logger to the collector's.
package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// DefaultTopic is the events topic of the shipped configurations.
const DefaultTopic = "batchaudit-events"

// Config is the connection to the cluster and the events topic.
type Config struct {
	// Brokers are the bootstrap servers (host:port).
	Brokers []string `mapstructure:"brokers"`
	// ClientID names this client in the brokers' logs and metrics.
	ClientID string `mapstructure:"client_id"`
	// Topic is the events topic.
	Topic string `mapstructure:"topic"`
	// Partitions and ReplicationFactor are used when the topic does not
	// exist yet and this component creates it. The partition count bounds
	// how many processing collectors share the work, and it cannot change
	// later: a job's events would move to another partition, away from its
	// state.
	Partitions        int32 `mapstructure:"partitions"`
	ReplicationFactor int16 `mapstructure:"replication_factor"`

	_ struct{}
}

// NewConfig returns the defaults: the events topic with 12 partitions and
// the brokers' default replication factor.
func NewConfig(clientID string) Config {
	return Config{ClientID: clientID, Topic: DefaultTopic, Partitions: 12, ReplicationFactor: -1}
}

// Validate checks the settings.
func (c *Config) Validate() []error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers must list at least one bootstrap server (host:port)"))
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			errs = append(errs, fmt.Errorf("broker %q must be host:port", b))
		}
	}
	if c.Topic == "" || len(c.Topic) > 200 || strings.Trim(c.Topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" || c.Topic == "." || c.Topic == ".." {
		errs = append(errs, fmt.Errorf("topic %q is invalid: use letters, digits, '.', '_' and '-', at most 200 characters", c.Topic))
	}
	if c.Partitions <= 0 {
		errs = append(errs, errors.New("partitions must be positive"))
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		errs = append(errs, errors.New("replication_factor must be positive, or -1 for the brokers' default"))
	}
	return errs
}

// Options are the client options of the connection.
func (c *Config) Options(logger *zap.Logger) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.WithLogger(Logger{L: logger}),
		// A topic created at start is used at once, not after the
		// default 5s metadata refresh.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
}

// EnsureTopic creates topic unless it exists and returns its partition
// count. A topic another collector creates at the same moment is fine.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, rf int16, configs map[string]*string) (int32, error) {
	for attempt := 0; ; attempt++ {
		details, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("list topic %s: %w", topic, err)
		}
		if d, ok := details[topic]; ok && d.Err == nil {
			return int32(len(d.Partitions)), nil
		}
		resp, err := adm.CreateTopic(ctx, partitions, rf, configs, topic)
		switch {
		case err == nil && resp.Err == nil, errors.Is(err, kerr.TopicAlreadyExists), errors.Is(resp.Err, kerr.TopicAlreadyExists):
		case err != nil:
			return 0, fmt.Errorf("create topic %s: %w", topic, err)
		default:
			return 0, fmt.Errorf("create topic %s: %w", topic, resp.Err)
		}
		if attempt > 20 {
			return 0, fmt.Errorf("topic %s was created but is not listed", topic)
		}
		// Listed once the brokers' metadata has it.
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Logger sends franz-go's log lines to the collector's logger: its warnings
// and errors as such, its info lines (rebalances, transactions) at debug.
type Logger struct{ L *zap.Logger }

// Level implements kgo.Logger.
func (l Logger) Level() kgo.LogLevel {
	if l.L.Core().Enabled(zap.DebugLevel) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

// Log implements kgo.Logger.
func (l Logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		fields = append(fields, zap.Any(fmt.Sprint(keyvals[i]), keyvals[i+1]))
	}
	switch level {
	case kgo.LogLevelError:
		l.L.Error("kafka: "+msg, fields...)
	case kgo.LogLevelWarn:
		l.L.Warn("kafka: "+msg, fields...)
	default:
		l.L.Debug("kafka: "+msg, fields...)
	}
}

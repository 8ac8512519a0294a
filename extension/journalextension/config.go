package journalextension

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"

	"github.com/batchaudit/batchaudit/internal/kafkaclient"
)

// Config configures the journal.
type Config struct {
	// Directory holds the journal's segments (journal/) and the processors'
	// checkpointed state (state/). It is created if missing.
	Directory string `mapstructure:"directory"`
	// Fsync makes every group commit durable against power loss before the
	// receiver acknowledges it; without it an acknowledged request survives
	// a crash of the collector, not of the machine.
	Fsync bool `mapstructure:"fsync"`
	// MaxBacklogMiB bounds the journal bytes not yet delivered and
	// checkpointed; beyond it the receiver answers 503 with Retry-After.
	MaxBacklogMiB int64 `mapstructure:"max_backlog_mib"`
	// SegmentMiB is the size of one journal segment file.
	SegmentMiB int64 `mapstructure:"segment_mib"`
	// CheckpointInterval is how often delivered state is checkpointed
	// (at most this much is replayed after a crash).
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// CheckpointMiB checkpoints earlier when this much state was written.
	CheckpointMiB int64 `mapstructure:"checkpoint_mib"`
	// TickInterval: while no data arrives, a time-only record is appended
	// this often, so time-driven work (run expiry) happens at a journaled time.
	TickInterval time.Duration `mapstructure:"tick_interval"`
	// MaxDeliveryEvents bounds the log records of one pipeline call (several
	// journal records are delivered together up to it).
	MaxDeliveryEvents int `mapstructure:"max_delivery_events"`
	// RetryInterval and MaxRetryInterval pace redelivery after the pipeline
	// refused a delivery (exponential between the two).
	RetryInterval    time.Duration `mapstructure:"retry_interval"`
	MaxRetryInterval time.Duration `mapstructure:"max_retry_interval"`
	// DrainTimeout bounds how long shutdown keeps delivering what was
	// appended before it; the rest stays in the journal for the next start.
	DrainTimeout time.Duration `mapstructure:"drain_timeout"`
	// StateCacheMiB is the Pebble block cache of the checkpointed state
	// (bloom filters, index and data blocks of the CDC and lineage keys).
	StateCacheMiB int64 `mapstructure:"state_cache_mib"`
	// StateMemtableMiB is the size of one Pebble memtable (up to two are
	// in memory while one is flushed).
	StateMemtableMiB int64 `mapstructure:"state_memtable_mib"`
	// GoMemoryLimitMiB, when positive, is the Go runtime's soft memory limit
	// for the whole collector (runtime/debug.SetMemoryLimit), unless the
	// GOMEMLIMIT environment variable sets one: the garbage collector then
	// runs more often as the heap nears it instead of letting it double.
	GoMemoryLimitMiB int64 `mapstructure:"go_memory_limit_mib"`

	// Kafka, when set, makes the journal read a Kafka topic instead of a
	// local log (the processing tier of docs/scale-out.md): each partition
	// is delivered in offset order, and the state is checkpointed to the
	// compacted changelog topic <topic>-state together with the consumer
	// offsets, in one Kafka transaction. Directory then holds only a cache
	// of the owned partitions' state.
	Kafka configoptional.Optional[KafkaConfig] `mapstructure:"kafka"`

	_ struct{}
}

// KafkaConfig is the journal's Kafka source.
type KafkaConfig struct {
	// Brokers, client_id, topic, and partitions / replication_factor for
	// creating the topics when they are missing.
	kafkaclient.Config `mapstructure:",squash"`
	// Group is the consumer group the processing collectors share.
	Group string `mapstructure:"group"`
	// TransactionalID must be unique per collector and stable across its
	// restarts (a restart then fences and aborts what its previous run
	// left open at once). Empty: <group>-<hostname>-<hash of directory>.
	TransactionalID string `mapstructure:"transactional_id"`
	// SessionTimeout: a collector that stops heartbeating for this long
	// (killed, partitioned away) loses its partitions to the others.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
	// RebalanceTimeout bounds how long a rebalance waits for every member
	// to finish the delivery under way; it must exceed the longest
	// delivery (the audit exporter's timeout).
	RebalanceTimeout time.Duration `mapstructure:"rebalance_timeout"`
	// HeartbeatInterval is how often the group is told this collector lives.
	HeartbeatInterval time.Duration `mapstructure:"heartbeat_interval"`
	// TransactionTimeout: a checkpoint transaction left open by a collector
	// that died during it is aborted after this long; until then its
	// partitions wait.
	TransactionTimeout time.Duration `mapstructure:"transaction_timeout"`

	_ struct{}
}

func defaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		Config:             kafkaclient.NewConfig("batchaudit-processing"),
		Group:              "batchaudit-processing",
		SessionTimeout:     10 * time.Second,
		RebalanceTimeout:   time.Minute,
		HeartbeatInterval:  time.Second,
		TransactionTimeout: 10 * time.Second,
	}
}

func (k *KafkaConfig) validate() []error {
	var errs []error
	for _, err := range k.Config.Validate() {
		errs = append(errs, fmt.Errorf("kafka::%w", err))
	}
	if k.Group == "" {
		errs = append(errs, errors.New("kafka::group must not be empty"))
	}
	if k.HeartbeatInterval <= 0 || k.SessionTimeout <= k.HeartbeatInterval {
		errs = append(errs, errors.New("kafka::heartbeat_interval must be positive and below session_timeout"))
	}
	if k.RebalanceTimeout <= 0 || k.TransactionTimeout <= 0 {
		errs = append(errs, errors.New("kafka::rebalance_timeout and transaction_timeout must be positive"))
	}
	return errs
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() component.Config {
	return &Config{
		Directory:          "./batchaudit-data/journal",
		Fsync:              true,
		MaxBacklogMiB:      1024,
		SegmentMiB:         64,
		CheckpointInterval: 2 * time.Second,
		CheckpointMiB:      16,
		TickInterval:       5 * time.Second,
		MaxDeliveryEvents:  8192,
		RetryInterval:      time.Second,
		MaxRetryInterval:   30 * time.Second,
		DrainTimeout:       30 * time.Second,
		StateCacheMiB:      32,
		StateMemtableMiB:   8,
		Kafka:              configoptional.Default(defaultKafkaConfig()),
	}
}

// Validate checks the settings.
func (c *Config) Validate() error {
	var errs []error
	if c.Directory == "" {
		errs = append(errs, errors.New("directory must not be empty"))
	}
	if c.MaxBacklogMiB <= 0 {
		errs = append(errs, errors.New("max_backlog_mib must be positive: without a bound a long store outage fills the disk"))
	}
	if c.SegmentMiB <= 0 {
		errs = append(errs, errors.New("segment_mib must be positive"))
	}
	if c.SegmentMiB > c.MaxBacklogMiB {
		errs = append(errs, errors.New("segment_mib must not exceed max_backlog_mib"))
	}
	if c.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("checkpoint_interval must be positive"))
	}
	if c.CheckpointMiB <= 0 {
		errs = append(errs, errors.New("checkpoint_mib must be positive"))
	}
	if c.TickInterval <= 0 {
		errs = append(errs, errors.New("tick_interval must be positive"))
	}
	if c.MaxDeliveryEvents <= 0 {
		errs = append(errs, errors.New("max_delivery_events must be positive"))
	}
	if c.RetryInterval <= 0 || c.MaxRetryInterval < c.RetryInterval {
		errs = append(errs, errors.New("retry_interval must be positive and max_retry_interval at least retry_interval"))
	}
	if c.StateCacheMiB <= 0 || c.StateMemtableMiB <= 0 {
		errs = append(errs, errors.New("state_cache_mib and state_memtable_mib must be positive"))
	}
	if c.GoMemoryLimitMiB < 0 {
		errs = append(errs, errors.New("go_memory_limit_mib must not be negative (0 leaves the Go runtime's limit alone)"))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain_timeout must not be negative"))
	}
	if k := c.Kafka.Get(); k != nil {
		errs = append(errs, k.validate()...)
	}
	return errors.Join(errs...)
}

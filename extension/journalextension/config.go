package journalextension

import (
	"errors"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
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

	_ struct{}
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
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain_timeout must not be negative"))
	}
	return errors.Join(errs...)
}

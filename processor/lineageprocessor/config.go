package lineageprocessor // import "github.com/batchaudit/batchaudit/processor/lineageprocessor"

import (
	"errors"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
)

// Config configures the lineage processor.
type Config struct {
	// Storage is the storage extension (e.g. file_storage/lineage) holding
	// the state of active runs across restarts (written before each request
	// is acknowledged) and the chains spilled
	// beyond the memory budget. Without it, state lives in memory only and
	// chains over budget are evicted (reported as truncated).
	Storage *component.ID `mapstructure:"storage"`
	// RunTimeout finishes a run with no event for this long, with a
	// run_timeout finding and the findings found so far.
	RunTimeout time.Duration `mapstructure:"run_timeout"`
	// SettleTime is how long a run's findings wait after its batch end (and
	// after its last event) for events still on their way: a job's requests
	// may arrive in any order. 0 decides at the batch end.
	SettleTime time.Duration `mapstructure:"settle_time"`
	// CheckpointInterval is how often expired runs are looked for. The state
	// changes of each request are persisted before it is acknowledged,
	// independently of this interval.
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
	// MaxActiveLineages bounds the lineage chains held in memory; older
	// chains are spilled to storage beyond it.
	MaxActiveLineages int `mapstructure:"max_active_lineages"`
	// MemoryLimitMiB bounds the estimated memory of the chains held in
	// memory, the same way.
	MemoryLimitMiB int `mapstructure:"memory_limit_mib"`
	// MaxFindingRecordIDs caps the record ids listed on one finding; the
	// message gives the total.
	MaxFindingRecordIDs int `mapstructure:"max_finding_record_ids"`
	// SettledRunRetention is how long after a run settled the record ids
	// its findings name are kept (in storage), so that an event of the run
	// arriving later is checked against them (late_event findings).
	SettledRunRetention time.Duration `mapstructure:"settled_run_retention"`

	_ struct{}
}

var (
	_ component.Config  = (*Config)(nil)
	_ confmap.Validator = (*Config)(nil)
)

func createDefaultConfig() component.Config {
	return &Config{
		RunTimeout:          24 * time.Hour,
		SettleTime:          30 * time.Second,
		CheckpointInterval:  30 * time.Second,
		MaxActiveLineages:   200_000,
		MemoryLimitMiB:      256,
		MaxFindingRecordIDs: 100,
		SettledRunRetention: 24 * time.Hour,
	}
}

// Validate checks the ranges of the settings.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.RunTimeout <= 0 {
		errs = append(errs, errors.New("run_timeout must be positive"))
	}
	if cfg.SettleTime < 0 {
		errs = append(errs, errors.New("settle_time must not be negative (0 decides findings at the batch end)"))
	}
	if cfg.CheckpointInterval <= 0 {
		errs = append(errs, errors.New("checkpoint_interval must be positive"))
	}
	if cfg.MaxActiveLineages < 0 {
		errs = append(errs, errors.New("max_active_lineages must not be negative (0 means no count limit)"))
	}
	if cfg.MemoryLimitMiB < 0 {
		errs = append(errs, errors.New("memory_limit_mib must not be negative (0 means no memory limit)"))
	}
	if cfg.MaxFindingRecordIDs <= 0 {
		errs = append(errs, errors.New("max_finding_record_ids must be positive"))
	}
	if cfg.SettledRunRetention <= 0 {
		errs = append(errs, errors.New("settled_run_retention must be positive"))
	}
	return errors.Join(errs...)
}

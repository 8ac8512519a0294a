package cdcprocessor

import (
	"errors"
	"fmt"
	"path"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/confmap"
)

// What to do with no_change events.
const (
	NoChangeKeep  = "keep"  // export them
	NoChangeCount = "count" // do not export them; count them on the batch end
	NoChangeDrop  = "drop"  // same as count: an audit summary never loses a record
)

// What to export of batchaudit.record.data.
const (
	RecordDataRedact = "redact" // export it with the dataset's redaction applied
	RecordDataDrop   = "drop"   // remove it after classification
)

// Dataset roles: which events a dataset is classified from.
const (
	RoleTarget = "target" // record.write and record.delete events, matched on batchaudit.target.*
	RoleSource = "source" // record.read events, matched on batchaudit.source.*
)

// Delete scopes for full snapshots.
const (
	ScopeDataset   = "dataset"   // a snapshot covers the whole dataset
	ScopePartition = "partition" // a snapshot covers only the partitions the run wrote
)

// Config is the cdcprocessor configuration.
type Config struct {
	// Storage is the storage extension keeping the state (e.g. file_storage/cdc).
	// Without it the state lives in memory and is lost on restart.
	Storage *component.ID `mapstructure:"storage"`
	// Datasets are matched in order; the first match wins. Record events of
	// datasets that match none pass through unchanged.
	Datasets []DatasetConfig `mapstructure:"datasets"`
	// FieldHashKey, when set, makes the per-field hashes in the state
	// HMAC-SHA256 instead of plain SHA-256, so low-entropy values cannot be
	// recovered by hashing candidates.
	FieldHashKey configopaque.String `mapstructure:"field_hash_key"`
	// RedactionKey is the HMAC-SHA256 key that pseudonymizes redact.hash fields.
	RedactionKey configopaque.String `mapstructure:"redaction_key"`
	// NoChange is keep, count or drop.
	NoChange string `mapstructure:"no_change"`
	// RecordData is redact or drop.
	RecordData string `mapstructure:"record_data"`
	// MemoDepth is how many classifications of the current run are kept per
	// key to answer redelivered events identically.
	MemoDepth int `mapstructure:"memo_depth"`
	// RunTTL is how long the state of a run is kept after its last event.
	RunTTL time.Duration `mapstructure:"run_ttl"`
	// MaxScanBatch is how many record states one storage call of a delete
	// scan reads or writes (bounds memory of scans over large datasets).
	MaxScanBatch int `mapstructure:"max_scan_batch"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// DatasetConfig configures one dataset or a family of datasets.
type DatasetConfig struct {
	// Name is the dataset name or a glob pattern (path.Match syntax).
	Name string `mapstructure:"name"`
	// Namespace is an optional namespace or glob pattern; empty matches any.
	Namespace string `mapstructure:"namespace"`
	// Role is target (default) or source.
	Role string `mapstructure:"role"`
	// KeyFields form the record key from the record data; without them the
	// event's batchaudit.record.key_fields, else batchaudit.record.id.
	KeyFields []string `mapstructure:"key_fields"`
	// IncludeFields limits hashing and change detection to these fields.
	IncludeFields []string `mapstructure:"include_fields"`
	// IgnoreFields are left out of hashing and change detection (e.g. updated_at).
	IgnoreFields []string `mapstructure:"ignore_fields"`
	// FullSnapshot: every successful run writes the complete dataset, so keys
	// it did not write are deleted at its batch end.
	FullSnapshot bool `mapstructure:"full_snapshot"`
	// DeleteScope is dataset (default) or partition.
	DeleteScope string `mapstructure:"delete_scope"`
	// KeepOldValues keeps the redacted previous values in the state so updates
	// carry batchaudit.change.old_value and batchaudit.change.new_value.
	KeepOldValues bool `mapstructure:"keep_old_values"`
	// Redact lists fields to pseudonymize or drop before anything is stored or
	// exported.
	Redact RedactConfig `mapstructure:"redact"`
}

// RedactConfig names the fields to protect.
type RedactConfig struct {
	// Hash fields are replaced by "hmac-sha256:<hex>" of their value under redaction_key.
	Hash []string `mapstructure:"hash"`
	// Drop fields are removed.
	Drop []string `mapstructure:"drop"`
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() component.Config {
	return &Config{
		Datasets:     []DatasetConfig{{Name: "*"}},
		NoChange:     NoChangeKeep,
		RecordData:   RecordDataRedact,
		MemoDepth:    4,
		RunTTL:       7 * 24 * time.Hour,
		MaxScanBatch: 4096,
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	switch c.NoChange {
	case NoChangeKeep, NoChangeCount, NoChangeDrop:
	default:
		errs = append(errs, fmt.Errorf("no_change: %q is not one of keep, count, drop", c.NoChange))
	}
	switch c.RecordData {
	case RecordDataRedact, RecordDataDrop:
	default:
		errs = append(errs, fmt.Errorf("record_data: %q is not one of redact, drop", c.RecordData))
	}
	if c.MemoDepth < 1 || c.MemoDepth > 16 {
		errs = append(errs, fmt.Errorf("memo_depth: must be between 1 and 16, got %d", c.MemoDepth))
	}
	if c.RunTTL <= 0 {
		errs = append(errs, errors.New("run_ttl: must be positive"))
	}
	if c.MaxScanBatch < 1 {
		errs = append(errs, errors.New("max_scan_batch: must be positive"))
	}
	if len(c.Datasets) == 0 {
		errs = append(errs, errors.New("datasets: at least one dataset is required (use name: \"*\" for all)"))
	}
	for i, d := range c.Datasets {
		errs = append(errs, d.validate(fmt.Sprintf("datasets[%d]", i), c)...)
	}
	return errors.Join(errs...)
}

func (d *DatasetConfig) validate(at string, c *Config) []error {
	var errs []error
	if d.Name == "" {
		errs = append(errs, fmt.Errorf("%s.name: is required", at))
	} else if _, err := path.Match(d.Name, ""); err != nil {
		errs = append(errs, fmt.Errorf("%s.name: invalid pattern %q", at, d.Name))
	}
	if _, err := path.Match(d.Namespace, ""); err != nil {
		errs = append(errs, fmt.Errorf("%s.namespace: invalid pattern %q", at, d.Namespace))
	}
	switch d.Role {
	case "", RoleTarget, RoleSource:
	default:
		errs = append(errs, fmt.Errorf("%s.role: %q is not one of target, source", at, d.Role))
	}
	switch d.DeleteScope {
	case "", ScopeDataset, ScopePartition:
	default:
		errs = append(errs, fmt.Errorf("%s.delete_scope: %q is not one of dataset, partition", at, d.DeleteScope))
	}
	if d.FullSnapshot && d.Role == RoleSource {
		errs = append(errs, fmt.Errorf("%s.full_snapshot: only target datasets can be full snapshots", at))
	}
	if d.DeleteScope == ScopePartition && !d.FullSnapshot {
		errs = append(errs, fmt.Errorf("%s.delete_scope: partition needs full_snapshot: true", at))
	}
	if len(d.IncludeFields) > 0 && len(d.IgnoreFields) > 0 {
		errs = append(errs, fmt.Errorf("%s: include_fields and ignore_fields are exclusive", at))
	}
	if len(d.Redact.Hash) > 0 && c.RedactionKey == "" {
		errs = append(errs, fmt.Errorf("%s.redact.hash: needs redaction_key (an unkeyed hash of a low-entropy value can be reversed)", at))
	}
	seen := map[string]bool{}
	for _, f := range append(append([]string{}, d.Redact.Hash...), d.Redact.Drop...) {
		if seen[f] {
			errs = append(errs, fmt.Errorf("%s.redact: field %q is listed twice", at, f))
		}
		seen[f] = true
	}
	for _, f := range d.KeyFields {
		if seen[f] {
			errs = append(errs, fmt.Errorf("%s.redact: key field %q cannot be redacted (the record id carries it)", at, f))
		}
	}
	return errs
}

package reportextension

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"

	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/esstore"
)

// Config configures the report schedules. The store section is the audit
// exporter's: sqlite.path, or an elasticsearch section.
type Config struct {
	SQLite        SQLiteConfig                            `mapstructure:"sqlite"`
	Elasticsearch configoptional.Optional[esstore.Config] `mapstructure:"elasticsearch"`
	// SigningKeyFile is the Ed25519 signer key (batchaudit keygen); it must
	// be readable by its owner only. Required when schedules are set.
	SigningKeyFile string `mapstructure:"signing_key_file"`
	// OutputDir receives OUTPUT_DIR/<schedule>/<report id>/.
	OutputDir string `mapstructure:"output_dir"`
	// Timezone names the zone periods start in (IANA name); cron times use
	// it too.
	Timezone string `mapstructure:"timezone"`
	// Catalog is the dataset catalog of the GDPR and HIPAA reports.
	Catalog reports.Catalog `mapstructure:"catalog"`
	// RedactionKey is cdcprocessor's redaction_key (subject pseudonyms).
	RedactionKey configopaque.String `mapstructure:"redaction_key"`
	// MaxCatchUp bounds how many missed periods of one schedule are
	// produced at start; older ones are logged and left out.
	MaxCatchUp int `mapstructure:"max_catch_up"`
	// Chromium is the browser for PDF output; empty finds chromium on PATH.
	Chromium string `mapstructure:"chromium"`
	// Attestation configures the reports' integrity attestation.
	Attestation AttestationConfig `mapstructure:"attestation"`
	Schedules   []ScheduleConfig  `mapstructure:"schedules"`

	_ struct{}
}

// AttestationConfig configures how reports attest their period with the
// audit exporter's signed checkpoints (docs/reports.md).
type AttestationConfig struct {
	// CheckpointKeys are verifier keys (text, or files holding them) of the
	// exporter's checkpoint signing keys: the report then states whether
	// its checkpoints verify; without keys it states that they were not
	// verified.
	CheckpointKeys []string `mapstructure:"checkpoint_keys"`
	// OriginPrefix is the exporter's checkpoints::origin_prefix.
	OriginPrefix string `mapstructure:"origin_prefix"`
	// Wait is how long after a period's end a report waits for a
	// checkpoint that covers it, when none does yet (the exporter signs
	// every checkpoints::interval); after that it is written saying so.
	Wait time.Duration `mapstructure:"wait"`

	_ struct{}
}

// SQLiteConfig names the SQLite trail.
type SQLiteConfig struct {
	Path string `mapstructure:"path"`

	_ struct{}
}

// ScheduleConfig is one report series.
type ScheduleConfig struct {
	// Name identifies the series (output directory, report index).
	Name string `mapstructure:"name"`
	Kind string `mapstructure:"kind"`
	// Cron says when to look for closed periods (5 fields, or @daily,
	// @weekly, @monthly, ...). A period is produced at the first cron time
	// at or after its end.
	Cron string `mapstructure:"cron"`
	// Period is hour, day, week (from Monday), month, quarter or year.
	Period  string        `mapstructure:"period"`
	Filters FiltersConfig `mapstructure:"filters"`
	// Formats default to html, json and csv.
	Formats []string `mapstructure:"formats"`

	_ struct{}
}

// FiltersConfig narrows a scheduled report (see reports.Filters).
type FiltersConfig struct {
	Job     string `mapstructure:"job"`
	Dataset string `mapstructure:"dataset"`
	Actor   string `mapstructure:"actor"`
	Record  string `mapstructure:"record"`

	_ struct{}
}

func (f FiltersConfig) filters() reports.Filters {
	return reports.Filters{Job: f.Job, Dataset: f.Dataset, Actor: f.Actor, Record: f.Record}
}

var (
	_           component.Config  = (*Config)(nil)
	_           confmap.Validator = (*Config)(nil)
	namePattern                   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	cronParser                    = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

// Validate reports every problem at once.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Elasticsearch.HasValue() && cfg.SQLite.Path != "" {
		errs = append(errs, errors.New("sqlite.path and elasticsearch are both set: configure one store"))
	}
	if _, err := time.LoadLocation(cfg.Timezone); err != nil {
		errs = append(errs, fmt.Errorf("timezone: %w", err))
	}
	if len(cfg.Schedules) > 0 && cfg.SigningKeyFile == "" {
		errs = append(errs, errors.New("signing_key_file: required: reports are signed (create a key with batchaudit keygen)"))
	}
	if len(cfg.Schedules) > 0 && cfg.OutputDir == "" {
		errs = append(errs, errors.New("output_dir: required"))
	}
	if cfg.Attestation.Wait < 0 {
		errs = append(errs, fmt.Errorf("attestation.wait: must not be negative, got %s", cfg.Attestation.Wait))
	}
	if _, err := signing.LoadVerifiers(cfg.Attestation.CheckpointKeys); err != nil {
		errs = append(errs, fmt.Errorf("attestation.checkpoint_keys: %w", err))
	}
	if cfg.MaxCatchUp < 1 {
		errs = append(errs, fmt.Errorf("max_catch_up: must be at least 1, got %d", cfg.MaxCatchUp))
	}
	if err := cfg.Catalog.Validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, s := range cfg.Schedules {
		at := fmt.Sprintf("schedules[%d]", i)
		switch {
		case !namePattern.MatchString(s.Name):
			errs = append(errs, fmt.Errorf("%s.name: %q must be letters, digits, '.', '_' or '-' (at most 64)", at, s.Name))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, s.Name))
		}
		seen[s.Name] = true
		if !slices.Contains(reports.Kinds, s.Kind) {
			errs = append(errs, fmt.Errorf("%s.kind: %q is not one of %s", at, s.Kind, strings.Join(reports.Kinds, ", ")))
		}
		if s.Kind == reports.KindLineage && s.Filters.Record == "" && s.Filters.Dataset == "" {
			errs = append(errs, fmt.Errorf("%s.filters: a lineage schedule needs a record or a dataset", at))
		}
		if _, err := cronParser.Parse(s.Cron); err != nil {
			errs = append(errs, fmt.Errorf("%s.cron: %q: %w", at, s.Cron, err))
		}
		if _, ok := periods[s.Period]; !ok {
			errs = append(errs, fmt.Errorf("%s.period: %q is not one of hour, day, week, month, quarter, year", at, s.Period))
		}
		for _, f := range s.Formats {
			if !slices.Contains(reports.Formats, f) {
				errs = append(errs, fmt.Errorf("%s.formats: %q is not one of %s", at, f, strings.Join(reports.Formats, ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

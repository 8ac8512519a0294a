package auditexporter

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/batchaudit/batchaudit/store/esstore"
)

// Config configures the audit exporter. The backend is Elasticsearch when
// elasticsearch.endpoints is set, otherwise SQLite.
type Config struct {
	// Stream names the audit log; event sequence numbers are gapless per
	// stream and survive restarts.
	Stream string `mapstructure:"stream"`

	SQLite SQLiteConfig `mapstructure:"sqlite"`
	// Elasticsearch, when the section is present, selects the
	// Elasticsearch backend; its endpoints are then required.
	Elasticsearch configoptional.Optional[esstore.Config] `mapstructure:"elasticsearch"`

	// StreamPerPartition writes the events of journal partition p to stream
	// <stream>-p<p>: behind a Kafka journal (docs/scale-out.md) each stream
	// then has one writer, the partition's owner.
	StreamPerPartition bool `mapstructure:"stream_per_partition"`

	// Checkpoints signs the stream's Merkle log (off without key_files).
	Checkpoints CheckpointsConfig `mapstructure:"checkpoints"`

	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig   configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	_ struct{}
}

// SQLiteConfig configures the embedded default backend.
type SQLiteConfig struct {
	// Path of the database file (its directory is created); empty means
	// ./batchaudit-data/audit.db. ":memory:" is for tests only.
	Path string `mapstructure:"path"`

	_ struct{}
}

var (
	_                     component.Config  = (*Config)(nil)
	_                     confmap.Validator = (*Config)(nil)
	streamPattern                           = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	errStreamEmpty                          = errors.New("stream must not be empty")
	errTimeoutNotPositive                   = errors.New("timeout must be positive: an audit write that never ends would hold the queue forever")
)

// Validate checks the exporter's own settings; the nested sending_queue,
// retry_on_failure and backend sections validate themselves.
func (cfg *Config) Validate() error {
	var errs []error
	switch {
	case cfg.Stream == "":
		errs = append(errs, errStreamEmpty)
	case !streamPattern.MatchString(cfg.Stream):
		errs = append(errs, fmt.Errorf("stream %q is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters", cfg.Stream))
	}
	if cfg.StreamPerPartition && len(cfg.Stream) > 116 {
		errs = append(errs, fmt.Errorf("stream %q is too long for stream_per_partition: at most 116 characters, so that <stream>-p<partition> fits 128", cfg.Stream))
	}
	if cfg.TimeoutConfig.Timeout <= 0 {
		errs = append(errs, errTimeoutNotPositive)
	}
	errs = append(errs, cfg.validateBackend()...)
	errs = append(errs, cfg.Checkpoints.validate()...)
	return errors.Join(errs...)
}

func (c *CheckpointsConfig) validate() []error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, errors.New("checkpoints::interval must be positive"))
	}
	if c.MaxEvents < 0 {
		errs = append(errs, errors.New("checkpoints::max_events must not be negative"))
	}
	if strings.ContainsAny(c.OriginPrefix, "\n\t ") {
		errs = append(errs, fmt.Errorf("checkpoints::origin_prefix %q must not contain spaces or line breaks", c.OriginPrefix))
	}
	if c.PostURL != "" {
		if u, err := url.Parse(c.PostURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, fmt.Errorf("checkpoints::post_url %q must be an http or https URL", c.PostURL))
		}
	}
	if !c.enabled() && (c.File != "" || c.PostURL != "") {
		errs = append(errs, errors.New("checkpoints::file and post_url need key_files to sign with"))
	}
	// Kept only in the store, checkpoints prove nothing against whoever
	// controls the store: they must also be published.
	if c.enabled() && c.File == "" && c.PostURL == "" {
		errs = append(errs, errors.New("checkpoints::key_files is set but neither checkpoints::file nor checkpoints::post_url: "+
			"signed checkpoints must also leave the store; set file to a path the store's administrators cannot write (docs/integrity.md)"))
	}
	return errs
}

package esstore

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configtls"
)

// Config is the Elasticsearch backend's configuration. The audit exporter
// embeds it; every option is documented in docs/storage.md.
type Config struct {
	// Endpoints are the node URLs; requests go round robin, a failed node is
	// skipped until it recovers.
	Endpoints []string `mapstructure:"endpoints"`
	// Username and Password enable basic authentication; APIKey (the base64
	// "id:key" credential) takes precedence over them.
	Username string                 `mapstructure:"username"`
	Password configopaque.String    `mapstructure:"password"`
	APIKey   configopaque.String    `mapstructure:"api_key"`
	TLS      configtls.ClientConfig `mapstructure:"tls"`
	// AllowInsecureSkipVerify must be set as well for tls.insecure_skip_verify
	// to be accepted: without certificate checks anyone on the path can
	// read the credentials and change the trail in transit.
	AllowInsecureSkipVerify bool `mapstructure:"allow_insecure_skip_verify"`
	// Timeout bounds each HTTP request (one bulk request, one search).
	Timeout time.Duration `mapstructure:"timeout"`
	// Compression gzips request bodies.
	Compression bool `mapstructure:"compression"`
	// IndexPrefix names the indices and templates: <prefix>-events,
	// <prefix>-runs, <prefix>-deadletters.
	IndexPrefix string `mapstructure:"index_prefix"`
	// InstallTemplates puts the composable index templates and creates the
	// indices at start. Turn it off when operators manage them.
	InstallTemplates bool `mapstructure:"install_templates"`
	// MaxBulkBytes caps one bulk request body before compression.
	MaxBulkBytes int `mapstructure:"max_bulk_bytes"`
	// MaxInFlight is how many bulk requests one write sends at a time.
	MaxInFlight int `mapstructure:"max_in_flight"`
	// DedupeWindow is how many recent entries per stream the writer
	// remembers (approximately, about 3 bytes each) to recognize
	// redeliveries before numbering them; see docs/storage.md.
	DedupeWindow int         `mapstructure:"dedupe_window"`
	Retry        RetryConfig `mapstructure:"retry"`

	_ struct{}
}

// RetryConfig is the backoff for retryable failures inside one Write: whole
// requests (network errors, 429, 5xx) and single bulk items (429, 5xx).
type RetryConfig struct {
	InitialInterval time.Duration `mapstructure:"initial_interval"`
	MaxInterval     time.Duration `mapstructure:"max_interval"`
	// MaxAttempts counts requests per item including the first; 0 retries
	// until the caller's context is done.
	MaxAttempts int `mapstructure:"max_attempts"`
}

// NewDefaultConfig returns the defaults documented in docs/storage.md.
func NewDefaultConfig() Config {
	return Config{
		Endpoints:        []string{"http://127.0.0.1:9200"},
		TLS:              configtls.NewDefaultClientConfig(),
		Timeout:          30 * time.Second,
		Compression:      true,
		IndexPrefix:      "batchaudit",
		InstallTemplates: true,
		MaxBulkBytes:     5 << 20,
		MaxInFlight:      4,
		DedupeWindow:     200_000,
		Retry: RetryConfig{
			InitialInterval: 100 * time.Millisecond,
			MaxInterval:     30 * time.Second,
		},
	}
}

// Index names must be lowercase and must not start with -, _ or +; we also
// keep the prefix to characters that need no escaping anywhere.
var prefixPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// maxPrefixLen leaves room for "-deadletters" within the 255-byte limit.
const maxPrefixLen = 200

// Validate reports every problem in the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("endpoints: at least one Elasticsearch URL is required"))
	}
	for i, e := range c.Endpoints {
		u, err := url.Parse(e)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("endpoints[%d]: %q is not a valid URL: %w", i, e, err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("endpoints[%d]: %q must start with http:// or https://", i, e))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("endpoints[%d]: %q has no host", i, e))
		}
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("password: set username too, or use api_key"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %s", c.Timeout))
	}
	switch {
	case c.IndexPrefix == "":
		errs = append(errs, errors.New("index_prefix: must not be empty"))
	case len(c.IndexPrefix) > maxPrefixLen:
		errs = append(errs, fmt.Errorf("index_prefix: at most %d characters, got %d", maxPrefixLen, len(c.IndexPrefix)))
	case !prefixPattern.MatchString(c.IndexPrefix):
		errs = append(errs, fmt.Errorf("index_prefix: %q must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", c.IndexPrefix))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max_in_flight: must be at least 1, got %d", c.MaxInFlight))
	}
	if c.DedupeWindow < 0 {
		errs = append(errs, fmt.Errorf("dedupe_window: must not be negative, got %d", c.DedupeWindow))
	}
	if c.MaxBulkBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_bulk_bytes: must be at least 1024, got %d", c.MaxBulkBytes))
	}
	if c.Retry.InitialInterval <= 0 {
		errs = append(errs, fmt.Errorf("retry.initial_interval: must be positive, got %s", c.Retry.InitialInterval))
	}
	if c.Retry.MaxInterval < c.Retry.InitialInterval {
		errs = append(errs, fmt.Errorf("retry.max_interval: must be at least retry.initial_interval (%s), got %s", c.Retry.InitialInterval, c.Retry.MaxInterval))
	}
	if c.Retry.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("retry.max_attempts: must be 0 (until the deadline) or positive, got %d", c.Retry.MaxAttempts))
	}
	if c.TLS.InsecureSkipVerify && !c.AllowInsecureSkipVerify {
		errs = append(errs, errors.New("tls.insecure_skip_verify: refused, it turns off the check of Elasticsearch's certificate "+
			"(anyone on the path could read the credentials and change the audit trail); give the CA with tls.ca_file, "+
			"or, for a test node only, also set allow_insecure_skip_verify: true"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tls: %w", err))
	}
	return errors.Join(errs...)
}

// The index names for a prefix, exported for tools that read the indices
// directly (the Kibana data views in package kibana).

// EventsIndex is the index of stored audit events.
func EventsIndex(prefix string) string { return prefix + "-events" }

// RunsIndex is the index of run summaries.
func RunsIndex(prefix string) string { return prefix + "-runs" }

// DeadLettersIndex is the index of dead letters, conflicts included.
func DeadLettersIndex(prefix string) string { return prefix + "-deadletters" }

func (c *Config) eventsIndex() string      { return EventsIndex(c.IndexPrefix) }
func (c *Config) runsIndex() string        { return RunsIndex(c.IndexPrefix) }
func (c *Config) deadLettersIndex() string { return DeadLettersIndex(c.IndexPrefix) }
func (c *Config) tilesIndex() string       { return TilesIndex(c.IndexPrefix) }
func (c *Config) checkpointsIndex() string { return CheckpointsIndex(c.IndexPrefix) }

// TilesIndex is the index of the streams' Merkle tiles.
func TilesIndex(prefix string) string { return prefix + "-tiles" }

// CheckpointsIndex is the index of the streams' signed checkpoints.
func CheckpointsIndex(prefix string) string { return prefix + "-checkpoints" }

// endpointsForLog lists endpoints without any credentials in the URLs.
func (c *Config) endpointsForLog() string {
	out := make([]string, len(c.Endpoints))
	for i, e := range c.Endpoints {
		if u, err := url.Parse(e); err == nil {
			u.User = nil
			e = u.String()
		}
		out[i] = e
	}
	return strings.Join(out, ",")
}

package auditreceiver

import (
	"errors"
	"fmt"
	"mime"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
)

// maxAttributeDepth is the highest limits::max_attribute_depth: a plain JSON
// event nests its attributes two levels down ({"attributes": {...}}), and the
// JSON reader stops at ingest.MaxDecodeDepth.
const maxAttributeDepth = ingest.MaxDecodeDepth - 4

// Config defines the audit receiver's settings.
type Config struct {
	// Protocols are the servers to run; at least one is required.
	Protocols Protocols `mapstructure:"protocols"`
	// Limits bound what one request may carry.
	Limits LimitsConfig `mapstructure:"limits"`
	// RetryAfter is sent (whole seconds, rounded up) with 503 answers and as
	// gRPC RetryInfo when the next consumer refuses data temporarily.
	RetryAfter time.Duration `mapstructure:"retry_after"`
	// Journal names a journal extension: accepted requests are appended to
	// it (and acknowledged once durable there) and delivered from it into
	// the pipeline, instead of being passed to the pipeline directly.
	Journal *component.ID `mapstructure:"journal"`
	// TimeWindow bounds the event times accepted, on every protocol.
	TimeWindow TimeWindowConfig `mapstructure:"time_window"`
	// AllowedJSONContentTypes are further media types the JSON endpoints
	// read as JSON besides application/json, application/*+json and the
	// NDJSON types; "" admits requests without a Content-Type. Anything
	// else gets 415.
	AllowedJSONContentTypes []string `mapstructure:"allowed_json_content_types"`
	// Pseudonymize replaces personal values of every accepted event by
	// keyed pseudonyms before anything is journaled or passed on.
	Pseudonymize PseudonymizeConfig `mapstructure:"pseudonymize"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Protocols holds the HTTP server (all HTTP routes) and the gRPC server
// (OTLP logs and traces services).
type Protocols struct {
	HTTP configoptional.Optional[confighttp.ServerConfig] `mapstructure:"http"`
	GRPC configoptional.Optional[configgrpc.ServerConfig] `mapstructure:"grpc"`

	_ struct{}
}

// LimitsConfig bounds request sizes. Requests over a limit get 413 (HTTP) or
// InvalidArgument (gRPC) with the limit in the message; nothing of them is
// delivered.
type LimitsConfig struct {
	// MaxBodyBytes caps the request body as sent (compressed or not).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// MaxDecompressedBytes caps a compressed body after decompression; it
	// guards against decompression bombs. Also the gRPC message size cap
	// unless protocols.grpc.max_recv_msg_size_mib is set.
	MaxDecompressedBytes int64 `mapstructure:"max_decompressed_bytes"`
	// MaxEventsPerRequest caps the items (events, log records, spans) of one
	// request.
	MaxEventsPerRequest int `mapstructure:"max_events_per_request"`
	// MaxAttributeDepth caps how deeply one event's attribute values nest
	// maps and arrays (a map of scalars is 1 level). Deeper items are
	// rejected one by one; bodies nested deeper than
	// ingest.MaxDecodeDepth are refused whole before decoding.
	MaxAttributeDepth int `mapstructure:"max_attribute_depth"`
	// MaxValuesPerEvent caps the values of one event's attributes: every
	// attribute, map entry and array element, at any depth.
	MaxValuesPerEvent int `mapstructure:"max_values_per_event"`
	// MaxStringBytes caps every string of an event: attribute keys and
	// values, the event name, the body.
	MaxStringBytes int `mapstructure:"max_string_bytes"`

	_ struct{}
}

// PseudonymizeConfig names the values replaced by their keyed pseudonym,
// "hmac-sha256:<hex>" of HMAC-SHA256 under Key over the value's canonical
// JSON (canonical.Pseudonym), on every protocol, before the event is
// journaled or passed on (docs/privacy.md).
type PseudonymizeConfig struct {
	// Key is the HMAC key; the same key as cdcprocessor's redaction_key
	// and the reports' redaction key, so one value has one pseudonym.
	Key configopaque.String `mapstructure:"key"`
	// RecordID pseudonymizes the attributes naming records: record id,
	// lineage id, input record ids, finding record ids.
	RecordID bool `mapstructure:"record_id"`
	// Fields are top-level fields of the record data and the change values
	// (and validation.actual of a validation on such a column).
	Fields []string `mapstructure:"fields"`

	_ struct{}
}

// minPseudonymKeyBytes keeps keys out of guessing range.
const minPseudonymKeyBytes = 16

// devKeyPrefix marks the development key of the shipped configs: a
// pseudonym under a published key is no better than a plain hash, so the
// receiver warns when it runs with one.
const devKeyPrefix = "insecure-dev-key"

// TimeWindowConfig is the accepted range of event times, [Min, Max).
type TimeWindowConfig struct {
	Min time.Time `mapstructure:"min"`
	Max time.Time `mapstructure:"max"`

	_ struct{}
}

var (
	_                    component.Config  = (*Config)(nil)
	_                    confmap.Validator = (*Config)(nil)
	supportedCompression                   = []string{"", "gzip", "zstd", "zlib", "deflate"}
)

// Validate checks the configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if !cfg.Protocols.HTTP.HasValue() && !cfg.Protocols.GRPC.HasValue() {
		errs = append(errs, errors.New("must specify at least one protocol (protocols::http or protocols::grpc)"))
	}
	l := cfg.Limits
	if l.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("limits::max_body_bytes must be positive, got %d", l.MaxBodyBytes))
	}
	if l.MaxDecompressedBytes < l.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("limits::max_decompressed_bytes (%d) must be at least limits::max_body_bytes (%d)", l.MaxDecompressedBytes, l.MaxBodyBytes))
	}
	if l.MaxEventsPerRequest <= 0 {
		errs = append(errs, fmt.Errorf("limits::max_events_per_request must be positive, got %d", l.MaxEventsPerRequest))
	}
	if l.MaxAttributeDepth < 1 || l.MaxAttributeDepth > maxAttributeDepth {
		errs = append(errs, fmt.Errorf("limits::max_attribute_depth must be between 1 and %d (the decoders refuse %d levels outright), got %d",
			maxAttributeDepth, ingest.MaxDecodeDepth, l.MaxAttributeDepth))
	}
	if l.MaxValuesPerEvent <= 0 {
		errs = append(errs, fmt.Errorf("limits::max_values_per_event must be positive, got %d", l.MaxValuesPerEvent))
	}
	if l.MaxStringBytes <= 0 {
		errs = append(errs, fmt.Errorf("limits::max_string_bytes must be positive, got %d", l.MaxStringBytes))
	}
	if w := cfg.TimeWindow; w.Min.Before(ingest.EarliestTime) || w.Max.After(ingest.LatestTime) || !w.Min.Before(w.Max) {
		errs = append(errs, fmt.Errorf("time_window: [%s, %s) must be a non-empty range within [%s, %s], the times a log record and the stores hold",
			w.Min.Format(time.RFC3339Nano), w.Max.Format(time.RFC3339Nano), ingest.EarliestTime.Format(time.RFC3339), ingest.LatestTime.Format(time.RFC3339Nano)))
	}
	for _, t := range cfg.AllowedJSONContentTypes {
		if t == "" {
			continue
		}
		if mt, _, err := mime.ParseMediaType(t); err != nil || mt != t {
			errs = append(errs, fmt.Errorf("allowed_json_content_types: %q is not a lower-case media type such as text/plain (parameters are not allowed)", t))
		}
	}
	errs = append(errs, cfg.Pseudonymize.validate()...)
	if cfg.RetryAfter <= 0 {
		errs = append(errs, fmt.Errorf("retry_after must be positive, got %s", cfg.RetryAfter))
	}
	if h := cfg.Protocols.HTTP.Get(); h != nil {
		for _, c := range h.CompressionAlgorithms {
			if !slices.Contains(supportedCompression, c) {
				errs = append(errs, fmt.Errorf("protocols::http::compression_algorithms: %q is not supported (use gzip, zstd, zlib, deflate)", c))
			}
		}
	}
	return errors.Join(errs...)
}

func (p *PseudonymizeConfig) validate() []error {
	var errs []error
	if (p.RecordID || len(p.Fields) > 0) && len(p.Key) < minPseudonymKeyBytes {
		errs = append(errs, fmt.Errorf("pseudonymize::key must be at least %d bytes (32 random bytes recommended), got %d: set it, e.g. from an environment variable",
			minPseudonymKeyBytes, len(p.Key)))
	}
	seen := map[string]bool{}
	for _, f := range p.Fields {
		switch {
		case f == "":
			errs = append(errs, errors.New("pseudonymize::fields: a field name is empty"))
		case seen[f]:
			errs = append(errs, fmt.Errorf("pseudonymize::fields: %q is listed twice", f))
		}
		seen[f] = true
	}
	return errs
}

// pseudonymizer is the configured pseudonymizer, nil when off.
func (cfg *Config) pseudonymizer() *ingest.Pseudonymizer {
	p := cfg.Pseudonymize
	return ingest.NewPseudonymizer([]byte(p.Key), p.RecordID, p.Fields)
}

// ingestLimits are the per-item limits the parsers apply.
func (cfg *Config) ingestLimits() ingest.Limits {
	l := ingest.DefaultLimits()
	l.MaxDepth = cfg.Limits.MaxAttributeDepth
	l.MaxValues = cfg.Limits.MaxValuesPerEvent
	l.MaxStringBytes = cfg.Limits.MaxStringBytes
	l.TimeMin, l.TimeMax = cfg.TimeWindow.Min.UTC(), cfg.TimeWindow.Max.UTC()
	return l
}

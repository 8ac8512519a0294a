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

// ingestLimits are the per-item limits the parsers apply.
func (cfg *Config) ingestLimits() ingest.Limits {
	l := ingest.DefaultLimits()
	l.MaxDepth = cfg.Limits.MaxAttributeDepth
	l.MaxValues = cfg.Limits.MaxValuesPerEvent
	l.MaxStringBytes = cfg.Limits.MaxStringBytes
	l.TimeMin, l.TimeMax = cfg.TimeWindow.Min.UTC(), cfg.TimeWindow.Max.UTC()
	return l
}

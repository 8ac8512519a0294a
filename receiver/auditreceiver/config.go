package auditreceiver

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
)

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

package auditreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadata"
)

const (
	defaultHTTPEndpoint = "localhost:4318"
	defaultGRPCEndpoint = "localhost:4317"

	defaultMaxBodyBytes         = 8 << 20  // 8 MiB on the wire
	defaultMaxDecompressedBytes = 64 << 20 // 64 MiB once inflated
	defaultMaxEvents            = 10000
	defaultRetryAfter           = 5 * time.Second

	// HTTP server timeouts: a client must send its headers within 10s and
	// the whole request within 30s (a slow or stalled upload is dropped with
	// 408), and the answer must be written within 60s of the headers.
	// confighttp's default closes idle keep-alive connections after 60s.
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultWriteTimeout      = 60 * time.Second
)

// NewFactory returns the audit receiver factory. Both servers run by default;
// "enabled: false" under protocols::http or protocols::grpc turns one off. The receiver only produces
// logs: OTLP traces it accepts are converted to audit events.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithLogs(createLogs, metadata.LogsStability))
}

func createDefaultConfig() component.Config {
	httpCfg := confighttp.NewDefaultServerConfig()
	httpCfg.NetAddr.Endpoint = defaultHTTPEndpoint
	httpCfg.ReadHeaderTimeout = defaultReadHeaderTimeout
	httpCfg.ReadTimeout = defaultReadTimeout
	httpCfg.WriteTimeout = defaultWriteTimeout
	grpcCfg := configgrpc.NewDefaultServerConfig()
	grpcCfg.NetAddr.Endpoint = defaultGRPCEndpoint
	lim := ingest.DefaultLimits()
	return &Config{
		Protocols: Protocols{
			HTTP: configoptional.Some(httpCfg),
			GRPC: configoptional.Some(grpcCfg),
		},
		Limits: LimitsConfig{
			MaxBodyBytes:         defaultMaxBodyBytes,
			MaxDecompressedBytes: defaultMaxDecompressedBytes,
			MaxEventsPerRequest:  defaultMaxEvents,
			MaxAttributeDepth:    lim.MaxDepth,
			MaxValuesPerEvent:    lim.MaxValues,
			MaxStringBytes:       lim.MaxStringBytes,
		},
		TimeWindow: TimeWindowConfig{Min: lim.TimeMin, Max: lim.TimeMax},
		RetryAfter: defaultRetryAfter,
	}
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return newReceiver(cfg.(*Config), set, next)
}

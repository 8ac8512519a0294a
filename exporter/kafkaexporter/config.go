package kafkaexporter

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/batchaudit/batchaudit/internal/kafkaclient"
)

// Config configures the gateway's Kafka exporter.
type Config struct {
	// Connection and topic (brokers, client_id, topic, partitions,
	// replication_factor), shared with the journal that reads the topic.
	kafkaclient.Config `mapstructure:",squash"`

	// Compression of record batches: none, gzip, snappy, lz4 or zstd.
	Compression string `mapstructure:"compression"`
	// MaxRecordBytes bounds one Kafka record (a request's events of one
	// job, protobuf); larger sets are split into several records, in
	// order. Keep it below the topic's max.message.bytes.
	MaxRecordBytes int `mapstructure:"max_record_bytes"`

	// Timeout bounds one request's produce (until every acknowledgement):
	// past it the receiver answers 503 and the client retries.
	TimeoutConfig exporterhelper.TimeoutConfig `mapstructure:",squash"`

	_ struct{}
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() component.Config {
	timeout := exporterhelper.NewDefaultTimeoutConfig()
	timeout.Timeout = defaultTimeout
	return &Config{
		Config:         kafkaclient.NewConfig("batchaudit-gateway"),
		Compression:    "lz4",
		MaxRecordBytes: 900 << 10,
		TimeoutConfig:  timeout,
	}
}

var codecs = map[string]bool{"none": true, "gzip": true, "snappy": true, "lz4": true, "zstd": true}

// Validate checks the settings.
func (c *Config) Validate() error {
	errs := c.Config.Validate()
	if !codecs[c.Compression] {
		errs = append(errs, fmt.Errorf("compression %q is not supported: use none, gzip, snappy, lz4 or zstd", c.Compression))
	}
	if c.MaxRecordBytes < 1024 {
		errs = append(errs, errors.New("max_record_bytes must be at least 1024"))
	}
	if c.TimeoutConfig.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive: a produce that never ends would hold the client's request forever"))
	}
	return errors.Join(errs...)
}

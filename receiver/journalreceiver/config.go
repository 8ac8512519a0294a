package journalreceiver

import (
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
)

// Config names the journal to deliver.
type Config struct {
	// Journal is the journal extension whose records this receiver
	// delivers into its pipeline (at most one receiver per journal).
	Journal component.ID `mapstructure:"journal"`

	_ struct{}
}

var _ confmap.Validator = (*Config)(nil)

func createDefaultConfig() component.Config { return &Config{} }

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.Journal == (component.ID{}) {
		return errors.New("journal must name a journal extension (e.g. journal: journal)")
	}
	return nil
}

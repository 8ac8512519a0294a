package reports

import (
	"bytes"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// LoadCatalog reads a dataset catalog from a YAML file (the same fields as
// the report extension's catalog section). Unknown fields are errors.
func LoadCatalog(path string) (Catalog, error) {
	var c Catalog
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("catalog: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("catalog %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

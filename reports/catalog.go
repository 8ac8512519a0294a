package reports

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/batchaudit/batchaudit/canonical"
)

// Catalog is the small declarative dataset catalog the GDPR and HIPAA
// reports need: what each dataset holds, why, for whom, how long, and how a
// data subject is found in it (docs/reports.md, "Dataset catalog").
type Catalog struct {
	// Controller names the controller and its contact (GDPR Art. 30(1)(a)).
	Controller string         `mapstructure:"controller" yaml:"controller" json:"controller,omitempty"`
	Datasets   []DatasetEntry `mapstructure:"datasets" yaml:"datasets" json:"datasets,omitempty"`
}

// DatasetEntry describes the datasets its Name (and Namespace) match.
type DatasetEntry struct {
	// Name is a dataset name or glob (path.Match), matched against the
	// name or the whole namespace/name; Namespace, if set, must match too.
	Name              string   `mapstructure:"name" yaml:"name" json:"name"`
	Namespace         string   `mapstructure:"namespace" yaml:"namespace" json:"namespace,omitempty"`
	Purposes          []string `mapstructure:"purposes" yaml:"purposes" json:"purposes,omitempty"`
	DataCategories    []string `mapstructure:"data_categories" yaml:"data_categories" json:"data_categories,omitempty"`
	SubjectCategories []string `mapstructure:"subject_categories" yaml:"subject_categories" json:"subject_categories,omitempty"`
	Recipients        []string `mapstructure:"recipients" yaml:"recipients" json:"recipients,omitempty"`
	Transfers         []string `mapstructure:"transfers" yaml:"transfers" json:"transfers,omitempty"`
	ErasureLimit      string   `mapstructure:"erasure_limit" yaml:"erasure_limit" json:"erasure_limit,omitempty"`
	// SubjectFields are the record data fields that identify a data
	// subject (e.g. customer, email).
	SubjectFields []string `mapstructure:"subject_fields" yaml:"subject_fields" json:"subject_fields,omitempty"`
	// SubjectMatch is "pseudonym" (default: the fields hold cdcprocessor's
	// hmac-sha256 pseudonyms under the redaction key) or "plaintext" (the
	// fields hold the identifier as sent; only where no redaction applies).
	SubjectMatch string `mapstructure:"subject_match" yaml:"subject_match" json:"subject_match,omitempty"`
	// EPHI marks electronic protected health information (HIPAA report).
	EPHI bool `mapstructure:"ephi" yaml:"ephi" json:"ephi,omitempty"`
}

// Subject matching modes.
const (
	MatchPseudonym = "pseudonym"
	MatchPlaintext = "plaintext"
)

// Validate reports every problem at once.
func (c *Catalog) Validate() error {
	var errs []error
	for i, d := range c.Datasets {
		at := fmt.Sprintf("catalog.datasets[%d]", i)
		if d.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", at))
		} else if _, err := path.Match(d.Name, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: bad pattern %q: %w", at, d.Name, err))
		}
		if d.Namespace != "" {
			if _, err := path.Match(d.Namespace, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s.namespace: bad pattern %q: %w", at, d.Namespace, err))
			}
		}
		switch d.SubjectMatch {
		case "", MatchPseudonym, MatchPlaintext:
		default:
			errs = append(errs, fmt.Errorf("%s.subject_match: %q is not pseudonym or plaintext", at, d.SubjectMatch))
		}
	}
	return errors.Join(errs...)
}

// Match returns the first entry describing the dataset (namespace/name as
// the store writes it), or nil.
func (c *Catalog) Match(dataset string) *DatasetEntry {
	for i := range c.Datasets {
		if c.Datasets[i].matches(dataset) {
			return &c.Datasets[i]
		}
	}
	return nil
}

func (d *DatasetEntry) matches(dataset string) bool {
	if dataset == "" {
		return false
	}
	if d.Namespace == "" {
		if ok, _ := path.Match(d.Name, dataset); ok {
			return true
		}
	}
	// The namespace may itself contain slashes (file://x, postgres://h:5432),
	// so every split point is a candidate.
	for i := 0; i < len(dataset); i++ {
		if dataset[i] != '/' {
			continue
		}
		ns, name := dataset[:i], dataset[i+1:]
		if ok, _ := path.Match(d.Name, name); !ok {
			continue
		}
		if d.Namespace == "" {
			return true
		}
		if ok, _ := path.Match(d.Namespace, ns); ok {
			return true
		}
	}
	return false
}

func (d *DatasetEntry) matchMode() string {
	if d.SubjectMatch == "" {
		return MatchPseudonym
	}
	return d.SubjectMatch
}

// SubjectRef is how a report names a data subject: the keyed pseudonym
// (the same cdcprocessor stores), never the identifier itself.
func SubjectRef(redactionKey []byte, subject string) string {
	return canonical.Pseudonym(redactionKey, subject)
}

func join(l []string) string { return strings.Join(l, "; ") }

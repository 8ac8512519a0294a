// Package reports turns the audit trail into compliance evidence: SOX, GDPR,
// HIPAA, lineage and reconciliation reports over a period, built from the
// store's read side with store-side aggregation (store.Aggregator), so a
// report over millions of events reads only groups, run summaries and the
// few events it lists.
//
// Every report is one data model (Report: an envelope, an integrity
// attestation, the completeness of the data, summary numbers, sections of
// tables and charts, and the exact store reads it made), rendered as JSON,
// self-contained HTML, CSV per table and PDF, and signed: a signed-note
// manifest lists the SHA-256 of every file and the report's content hash.
// docs/reports.md documents the JSON schema and the rules.
package reports

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/canonical"
)

// Report kinds.
const (
	KindSOX            = "sox"
	KindGDPR           = "gdpr"
	KindHIPAA          = "hipaa"
	KindLineage        = "lineage"
	KindReconciliation = "reconciliation"
)

// Kinds lists every report kind.
var Kinds = []string{KindSOX, KindGDPR, KindHIPAA, KindLineage, KindReconciliation}

// SchemaVersion is the version of the JSON form (docs/reports.md).
const SchemaVersion = 1

// Version is the generator version written into every report; the build
// can set it with -ldflags "-X github.com/batchaudit/batchaudit/reports.Version=...".
var Version = "0.1.0"

// Filters narrow a report. Subject is never the plaintext identifier: the
// generator replaces it with its keyed pseudonym before it is recorded.
type Filters struct {
	Job     string `json:"job,omitempty"`
	Dataset string `json:"dataset,omitempty"`
	Actor   string `json:"actor,omitempty"`
	Record  string `json:"record,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// String is the filters as "key=value" words, sorted; "" without filters.
func (f Filters) String() string {
	var parts []string
	for _, kv := range [][2]string{{"actor", f.Actor}, {"dataset", f.Dataset}, {"job", f.Job}, {"record", f.Record}, {"subject", f.Subject}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, " ")
}

// Report is one compliance report. Everything but envelope.generated_at,
// envelope.store, envelope.content_sha256 and attestation.verification is
// its content: regenerating a closed period from the same trail gives the
// same content and so the same ContentSHA256, from SQLite or from
// Elasticsearch, with or without checkpoint verifier keys.
type Report struct {
	Schema       int          `json:"schema"`
	Envelope     Envelope     `json:"envelope"`
	Attestation  Attestation  `json:"attestation"`
	Completeness Completeness `json:"completeness"`
	Summary      []Metric     `json:"summary"`
	Sections     []Section    `json:"sections"`
	Queries      []Query      `json:"queries"`
}

// Envelope identifies the report.
type Envelope struct {
	// ID is derived from kind, period and filters: the same report of the
	// same period always has the same id.
	ID               string    `json:"report_id"`
	Kind             string    `json:"kind"`
	Title            string    `json:"title"`
	Frameworks       []string  `json:"frameworks"`
	From             time.Time `json:"period_from"`
	To               time.Time `json:"period_to"`
	Filters          Filters   `json:"filters"`
	Generator        string    `json:"generator"`
	GeneratorVersion string    `json:"generator_version"`
	// Outside the content hash: when and from where it was generated, and
	// the hash itself.
	GeneratedAt   time.Time `json:"generated_at"`
	Store         string    `json:"store"`
	ContentSHA256 string    `json:"content_sha256"`
}

// Metric is one headline number.
type Metric struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Value int64  `json:"value"`
}

// Section is one part of a report: text, tables and charts over its tables.
type Section struct {
	ID     string   `json:"id"`
	Title  string   `json:"title"`
	Text   []string `json:"text,omitempty"`
	Tables []Table  `json:"tables"`
	Charts []Chart  `json:"charts,omitempty"`
}

// Table is a list of rows. Cells are strings, integers or floats. When more
// rows exist than a report lists, Total says how many and Truncated is set:
// nothing is cut silently.
type Table struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Columns   []string `json:"columns"`
	Rows      [][]any  `json:"rows"`
	Total     int64    `json:"total_rows"`
	Truncated bool     `json:"truncated"`
	Note      string   `json:"note,omitempty"`
}

// Chart draws a table: X is the column of the categories, Series the
// column whose values stack (empty for one series), Value the column of
// the numbers.
type Chart struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Table  string `json:"table"`
	X      string `json:"x"`
	Series string `json:"series,omitempty"`
	Value  string `json:"value"`
}

// Query is one store read the report made, with its parameters verbatim.
type Query struct {
	Purpose string         `json:"purpose"`
	Call    string         `json:"call"`
	Params  map[string]any `json:"params"`
	Results int64          `json:"results"`
}

// Completeness says what data the report was built from and what may be
// missing from it.
type Completeness struct {
	PeriodClosed     bool              `json:"period_closed"`
	Runs             int64             `json:"runs"`
	RunsUnended      int64             `json:"runs_unended"`
	Events           int64             `json:"events"`
	EventsByStream   []StreamCount     `json:"events_by_stream"`
	DeadLetters      int64             `json:"dead_letters"`
	IntegrityAlarms  int64             `json:"integrity_alarms"`
	Notes            []string          `json:"notes"`
	DeadLetterCounts []DeadLetterCount `json:"dead_letters_by_stream"`
}

// StreamCount is the number of events of one stream in the period.
type StreamCount struct {
	Stream string `json:"stream"`
	Events int64  `json:"events"`
}

// DeadLetterCount is the number of dead letters of one stream in the period.
type DeadLetterCount struct {
	Stream          string `json:"stream"`
	DeadLetters     int64  `json:"dead_letters"`
	IntegrityAlarms int64  `json:"integrity_alarms"`
}

// Table returns the table with the id, or nil.
func (r *Report) Table(id string) *Table {
	for i := range r.Sections {
		for j := range r.Sections[i].Tables {
			if r.Sections[i].Tables[j].ID == id {
				return &r.Sections[i].Tables[j]
			}
		}
	}
	return nil
}

// Metric returns the value of a summary metric and whether it exists.
func (r *Report) Metric(id string) (int64, bool) {
	for _, m := range r.Summary {
		if m.ID == id {
			return m.Value, true
		}
	}
	return 0, false
}

// reportID derives the id from what defines the report's content.
func reportID(kind string, from, to time.Time, f Filters) string {
	h := sha256.Sum256([]byte(strings.Join([]string{kind, from.UTC().Format(time.RFC3339Nano),
		to.UTC().Format(time.RFC3339Nano), f.String()}, "\x00")))
	return fmt.Sprintf("%s-%s-%s-%s", kind, from.UTC().Format("20060102T150405Z"), to.UTC().Format("20060102T150405Z"),
		hex.EncodeToString(h[:4]))
}

// outsideContent are the envelope fields the content hash leaves out.
var outsideContent = []string{"generated_at", "store", "content_sha256"}

// ContentHash computes the content hash of a report's JSON form: the
// SHA-256 of the RFC 8785 canonical JSON of the document without
// envelope.generated_at, envelope.store, envelope.content_sha256 and
// attestation.verification (what the generator's keys said, not what the
// trail holds).
func ContentHash(reportJSON []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(reportJSON))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return "", fmt.Errorf("reports: not a report: %w", err)
	}
	env, ok := doc["envelope"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("reports: not a report: no envelope")
	}
	for _, k := range outsideContent {
		delete(env, k)
	}
	if a, ok := doc["attestation"].(map[string]any); ok {
		delete(a, "verification")
	}
	return canonical.Hash(doc)
}

// encode writes the report's JSON form (indented, for people) with
// its content hash filled in.
func (r *Report) encode() ([]byte, error) {
	r.Envelope.ContentSHA256 = ""
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if r.Envelope.ContentSHA256, err = ContentHash(b); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// newTable builds a Table from rows, listing at most max (0: all).
func newTable(id, title string, columns []string, rows [][]any, max int) Table {
	t := Table{ID: id, Title: title, Columns: columns, Rows: rows, Total: int64(len(rows))}
	if t.Rows == nil {
		t.Rows = [][]any{}
	}
	if max > 0 && len(t.Rows) > max {
		t.Rows, t.Truncated = t.Rows[:max], true
		t.Note = fmt.Sprintf("%d of %d rows listed (every format lists the same rows); narrow the period or the filters for the rest.", max, t.Total)
	}
	return t
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

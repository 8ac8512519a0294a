//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package lineageprocessor follows every record of a batch run from its read
// through its transformation steps to its writes, emits the completed chains
// (batchaudit.lineage.record), the dataset edges of each run
// (batchaudit.lineage.dataset) and data-loss findings (batchaudit.finding),
// and passes all input events through unchanged. See docs/lineage.md.
package lineageprocessor // import "github.com/batchaudit/batchaudit/processor/lineageprocessor"

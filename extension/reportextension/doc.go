//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package reportextension runs compliance report schedules inside the
// collector: at each cron time it writes the reports of the periods that
// have closed (SOX, GDPR, HIPAA, lineage, reconciliation; package reports),
// signs them, and records them in the store's report index, so a period is
// produced once, and periods missed while the collector was down are
// caught up at start.
package reportextension

//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package auditreceiver is batchaudit's front door: it accepts audit events as
// OTLP logs and traces (HTTP and gRPC), as plain JSON, and as OpenLineage
// events, normalizes them to the canonical model (package auditevent),
// explains every rejected item to the client, and pushes a logs pipeline of
// canonical events.
package auditreceiver

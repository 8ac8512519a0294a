//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package journalreceiver delivers a journal into its pipeline: the
// receiver of a processing collector, whose journal reads a Kafka topic
// that gateways write (docs/scale-out.md). It accepts nothing itself.
package journalreceiver

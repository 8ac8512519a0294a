//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package cdcprocessor derives change types (insert, update, delete,
// no_change) and changed fields for record events from a durable record-hash
// state kept through a collector storage extension, and emits deletes for
// keys missing from full-snapshot runs. See README.md and docs/cdc.md.
package cdcprocessor

//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package journalextension is batchaudit's durability spine: a local
// append-only journal that the audit receiver writes every accepted request
// to once (group commit, then acknowledge) and delivers from, in order,
// through the pipeline; and a storage extension whose clients keep the state
// of stateful processors durable together with the journal position it
// reflects. See README.md and docs/performance.md.
package journalextension

//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package auditexporter persists canonical audit events append-only,
// idempotently and without loss: into Elasticsearch when endpoints are
// configured, otherwise into an embedded SQLite file. Every log record ends up
// either stored (with a gapless sequence number in its stream) or as a dead
// letter with the reason; nothing is reported as sent that was not.
package auditexporter

// Package state is cdcprocessor's durable state: per-record hash state, a
// per-dataset key index that can be enumerated without storage iteration,
// dataset and run metadata, all kept in a collector storage extension client
// (go.opentelemetry.io/collector/extension/xextension/storage). The layout is
// documented in docs/cdc.md.
package state

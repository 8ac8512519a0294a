//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package kafkaexporter is the exporter of batchaudit's gateway tier
// (docs/scale-out.md): it produces every request's audit events to a Kafka
// topic, keyed by job so that everything the stateful processors must see
// together reaches one partition, synchronously (acks=all, idempotent
// producer, no queue), so the receiver in front of it answers 200 only once
// Kafka holds the events. The processing tier reads the topic through the
// journal extension.
package kafkaexporter

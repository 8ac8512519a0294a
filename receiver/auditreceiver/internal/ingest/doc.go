// Package ingest turns the request bodies auditreceiver accepts (OTLP logs and
// traces, plain JSON audit events, OpenLineage events) into canonical audit
// events rendered as log records, and explains every item it rejects.
//
// Every parser follows the same steps per item: map the input onto an
// auditevent.Event, give it a deterministic id when it has none, validate it
// against the model, and either render it (Event.ToLogRecord) or record a
// Rejection listing every problem. Nothing is dropped without a Rejection.
package ingest

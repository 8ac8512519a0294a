package auditreceiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadata"
)

// Refusal reasons (metric attribute "reason").
const (
	reasonInvalid    = "invalid"
	reasonMalformed  = "malformed"
	reasonLimit      = "limit"
	reasonDownstream = "downstream"
	reasonTimeout    = "timeout"
)

// Delivery outcomes; each protocol maps them to its status codes.
type outcome int

const (
	delivered       outcome = iota // everything valid was accepted downstream
	retryLater                     // the next consumer refused temporarily (backpressure)
	failedPermanent                // the next consumer refused for good
)

// deliver pushes the accepted events of res downstream and records metrics.
// It returns the outcome and, unless delivered, the reason.
func (r *auditReceiver) deliver(ctx context.Context, obs *receiverhelper.ObsReport, endpoint, format string, res *ingest.Result) (outcome, string) {
	invalid, overLimit := 0, 0
	for _, rej := range res.Rejected {
		switch {
		case rej.Partial():
		case rej.OverLimit:
			overLimit++
		default:
			invalid++
		}
	}
	if invalid > 0 {
		r.refused(ctx, endpoint, format, reasonInvalid, invalid)
	}
	if overLimit > 0 {
		r.refused(ctx, endpoint, format, reasonLimit, overLimit)
	}
	if res.Accepted == 0 {
		return delivered, ""
	}
	ctx = obs.StartLogsOp(ctx)
	err := r.push(ctx, res.Logs)
	obs.EndLogsOp(ctx, format, res.Accepted, err)
	if err == nil {
		r.tb.ReceiverAuditEventsAccepted.Add(ctx, int64(res.Accepted), metric.WithAttributeSet(attribute.NewSet(
			attribute.String("endpoint", endpoint), attribute.String("format", format))))
		return delivered, ""
	}
	r.refused(ctx, endpoint, format, reasonDownstream, res.Accepted)
	if errors.Is(err, journal.ErrFull) {
		return retryLater, fmt.Sprintf("%v; retry after %s", err, r.retryAfter())
	}
	if consumererror.IsPermanent(err) {
		return failedPermanent, "the pipeline rejected the events permanently: " + err.Error()
	}
	return retryLater, fmt.Sprintf("the pipeline cannot take the events now (%v); retry after %s", err, r.retryAfter())
}

// push hands accepted events on: to the journal when one is configured
// (durable once it returns), else straight into the pipeline.
func (r *auditReceiver) push(ctx context.Context, ld plog.Logs) error {
	if r.journal != nil {
		return r.journal.Append(ctx, ld)
	}
	return r.next.ConsumeLogs(ctx, ld)
}

func (r *auditReceiver) refused(ctx context.Context, endpoint, format, reason string, n int) {
	r.tb.ReceiverAuditEventsRefused.Add(ctx, int64(n), metric.WithAttributeSet(attribute.NewSet(
		attribute.String("endpoint", endpoint), attribute.String("format", format), attribute.String("reason", reason))))
}

func (r *auditReceiver) observeDuration(ctx context.Context, endpoint, status string, start time.Time) {
	r.tb.ReceiverAuditRequestDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributeSet(attribute.NewSet(
		attribute.String("endpoint", endpoint), attribute.String("status", status))))
}

// retryAfter is the configured back-off, whole seconds rounded up.
func (r *auditReceiver) retryAfter() time.Duration {
	d := r.cfg.RetryAfter.Truncate(time.Second)
	if d < r.cfg.RetryAfter {
		d += time.Second
	}
	return d
}

func (r *auditReceiver) options(ndjson bool, principal string) ingest.Options {
	return ingest.Options{MaxEvents: r.cfg.Limits.MaxEventsPerRequest, ScopeName: metadata.ScopeName, NDJSON: ndjson,
		Principal: principal, Limits: r.cfg.ingestLimits(), Pseudonymize: r.pseudonymize}
}

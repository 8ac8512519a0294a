// Package jobaudit instruments Go batch jobs: it emits batchaudit's canonical
// audit events (docs/conventions.md) through the OpenTelemetry logs API, inside
// a span per batch run so traces and audit events correlate.
//
//	a := jobaudit.New(loggerProvider, tracerProvider)
//	ctx, run := a.StartRun(ctx, "nightly-orders", jobaudit.WithActor("svc-etl", "", "scheduler"))
//	run.Read(ctx, src, "A-1", row)
//	run.Write(ctx, dst, "A-1", out)
//	run.End(ctx, err)
//
// The package does no I/O of its own: the SDK's batching exporters ship the
// events, so the job's hot path only builds and hashes records.
package jobaudit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

const scope = "github.com/batchaudit/batchaudit/jobaudit"

// Dataset names a source or target, OpenLineage style.
type Dataset = auditevent.Dataset

// Auditor creates batch runs.
type Auditor struct {
	logger log.Logger
	tracer trace.Tracer
}

// New returns an Auditor on the given providers (e.g. the SDK's, or the
// global ones from go.opentelemetry.io/otel and otel/log/global).
func New(lp log.LoggerProvider, tp trace.TracerProvider) *Auditor {
	return &Auditor{
		logger: lp.Logger(scope),
		tracer: tp.Tracer(scope),
	}
}

// Run is one batch run. Its methods are safe for concurrent use.
type Run struct {
	a      *Auditor
	span   trace.Span
	id     string
	common []attribute.KeyValue // stamped on every event of the run
	start  time.Time

	read, written, skipped, errored atomic.Int64
	ended                           atomic.Bool
}

// RunOption configures StartRun.
type RunOption func(*runConfig)

type runConfig struct {
	batchID, parentID, namespace string
	attrs                        []attribute.KeyValue
	// start are attributes of the batch start event only (run context).
	start []attribute.KeyValue
}

// WithBatchID sets the run id (default: a new UUIDv7). Use the orchestrator's
// run id (e.g. an Airflow or OpenLineage run id) so all systems agree.
func WithBatchID(id string) RunOption { return func(c *runConfig) { c.batchID = id } }

// WithParentBatch links the run to a parent run.
func WithParentBatch(id string) RunOption { return func(c *runConfig) { c.parentID = id } }

// WithNamespace sets the job namespace (e.g. the team or orchestrator).
func WithNamespace(ns string) RunOption { return func(c *runConfig) { c.namespace = ns } }

// WithActor records who runs the job; kind is human, service or scheduler.
func WithActor(id, name, kind string) RunOption {
	return func(c *runConfig) {
		c.attrs = appendNonEmpty(c.attrs, auditevent.AttrUserID, id)
		c.attrs = appendNonEmpty(c.attrs, auditevent.AttrUserName, name)
		c.attrs = appendNonEmpty(c.attrs, auditevent.AttrActorType, kind)
	}
}

// WithCompliance tags every event of the run with the frameworks (SOX, GDPR,
// HIPAA) and data classifications (PII, PHI, financial) it falls under.
func WithCompliance(frameworks, classifications []string) RunOption {
	return func(c *runConfig) {
		if len(frameworks) > 0 {
			c.attrs = append(c.attrs, attribute.StringSlice(auditevent.AttrFrameworks, frameworks))
		}
		if len(classifications) > 0 {
			c.attrs = append(c.attrs, attribute.StringSlice(auditevent.AttrClassification, classifications))
		}
	}
}

// WithVersion records the version of the job's code (a release or git sha)
// on the batch start, so a change of code between runs can be found.
func WithVersion(v string) RunOption {
	return func(c *runConfig) { c.start = appendNonEmpty(c.start, auditevent.AttrJobVersion, v) }
}

// WithConfig records the run's configuration (its parameters) and its hash
// on the batch start. Use WithConfigHash instead when a value is secret.
func WithConfig(params map[string]any) RunOption {
	return func(c *runConfig) {
		if params == nil {
			return
		}
		c.start = append(c.start, attribute.KeyValue{Key: auditevent.AttrJobConfig, Value: toValue(params)})
		if h, err := canonical.Hash(params); err == nil {
			c.start = append(c.start, attribute.String(auditevent.AttrConfigHash, h))
		}
	}
}

// WithConfigHash records only a hash of the run's configuration (for
// configurations with secrets): canonical.Hash of the parameters gives the
// hash the collector computes for WithConfig.
func WithConfigHash(h string) RunOption {
	return func(c *runConfig) { c.start = appendNonEmpty(c.start, auditevent.AttrConfigHash, h) }
}

// WithRunType says why the run ran: auditevent.RunNormal, RunRerun,
// RunBackfill or RunDryRun.
func WithRunType(t string) RunOption {
	return func(c *runConfig) { c.start = appendNonEmpty(c.start, auditevent.AttrRunType, t) }
}

// WithLogicalDate records the date (or interval start) the run processes,
// e.g. the partition date of a daily load.
func WithLogicalDate(d string) RunOption {
	return func(c *runConfig) { c.start = appendNonEmpty(c.start, auditevent.AttrLogicalDate, d) }
}

func appendNonEmpty(kvs []attribute.KeyValue, k, v string) []attribute.KeyValue {
	if v == "" {
		return kvs
	}
	return append(kvs, attribute.String(k, v))
}

// StartRun starts a batch run: a span named after the job and a batch start
// event. The returned context carries the span; pass it to the Run's methods
// so events carry its trace and span ids.
func (a *Auditor) StartRun(ctx context.Context, job string, opts ...RunOption) (context.Context, *Run) {
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.batchID == "" {
		cfg.batchID = auditevent.NewID()
	}
	common := []attribute.KeyValue{
		attribute.String(auditevent.AttrBatchID, cfg.batchID),
		attribute.String(auditevent.AttrJobName, job),
	}
	common = appendNonEmpty(common, auditevent.AttrJobNamespace, cfg.namespace)
	common = appendNonEmpty(common, auditevent.AttrParentBatchID, cfg.parentID)
	common = append(common, cfg.attrs...)

	ctx, span := a.tracer.Start(ctx, "batch "+job, trace.WithAttributes(common...),
		// The span's audit events are emitted as logs; receivers must not
		// derive them a second time from the span.
		trace.WithAttributes(attribute.String(auditevent.AttrRunEvents, auditevent.RunEventsAsLogs)))
	r := &Run{a: a, span: span, id: cfg.batchID, common: common, start: time.Now()}
	r.emit(ctx, auditevent.BatchStart, log.SeverityInfo, cfg.start)
	return ctx, r
}

// BatchID returns the run id.
func (r *Run) BatchID() string { return r.id }

// EventOption adds optional fields to one event.
type EventOption func(*[]attribute.KeyValue)

// WithLineageID sets the lineage id, for records whose key changes on the
// way (the lineage processor otherwise follows the record id).
func WithLineageID(id string) EventOption {
	return func(kv *[]attribute.KeyValue) { *kv = append(*kv, attribute.String(auditevent.AttrLineageID, id)) }
}

// WithInputRecords names the records a join or merge consumed.
func WithInputRecords(ids ...string) EventOption {
	return func(kv *[]attribute.KeyValue) {
		*kv = append(*kv, attribute.StringSlice(auditevent.AttrInputRecordIDs, ids))
	}
}

// WithPartition scopes a record to a partition (e.g. a load date), which
// limits snapshot delete detection to that partition.
func WithPartition(p string) EventOption {
	return func(kv *[]attribute.KeyValue) { *kv = append(*kv, attribute.String(auditevent.AttrPartition, p)) }
}

// WithKeyFields names the fields that form the record's business key.
func WithKeyFields(fields ...string) EventOption {
	return func(kv *[]attribute.KeyValue) {
		*kv = append(*kv, attribute.StringSlice(auditevent.AttrRecordKeyFields, fields))
	}
}

// WithoutData leaves the record content out of the event and sends only its
// hash; change detection then classifies by hash alone.
func WithoutData() EventOption {
	return func(kv *[]attribute.KeyValue) { *kv = append(*kv, attribute.Bool(noData, true)) }
}

// WithAttributes adds arbitrary attributes.
func WithAttributes(attrs ...attribute.KeyValue) EventOption {
	return func(kv *[]attribute.KeyValue) { *kv = append(*kv, attrs...) }
}

// noData is an in-process marker, never emitted.
const noData = "\x00jobaudit.nodata"

// Step describes a transformation step.
type Step struct {
	Name     string
	Sequence int
	// Type is DIRECT or INDIRECT, Subtype one of IDENTITY, TRANSFORMATION,
	// AGGREGATION, JOIN, GROUP_BY, FILTER, SORT, WINDOW, CONDITIONAL
	// (OpenLineage column lineage terms).
	Type, Subtype string
	Params        map[string]any
}

// Read records that a record was read from source.
func (r *Run) Read(ctx context.Context, source Dataset, recordID string, record map[string]any, opts ...EventOption) {
	r.read.Add(1)
	kv := datasetAttrs(nil, auditevent.AttrSourceNamespace, auditevent.AttrSourceName, source)
	kv = append(kv, attribute.String(auditevent.AttrRecordID, recordID))
	r.emitRecord(ctx, auditevent.RecordRead, kv, record, opts)
}

// Transform records one transformation step: the hashes of its input and
// output let the lineage processor check the chain has no gaps.
func (r *Run) Transform(ctx context.Context, recordID string, step Step, input, output map[string]any, opts ...EventOption) {
	kv := []attribute.KeyValue{
		attribute.String(auditevent.AttrRecordID, recordID),
		attribute.String(auditevent.AttrTransformName, step.Name),
	}
	if step.Sequence != 0 {
		kv = append(kv, attribute.Int(auditevent.AttrTransformSequence, step.Sequence))
	}
	kv = appendNonEmpty(kv, auditevent.AttrTransformType, step.Type)
	kv = appendNonEmpty(kv, auditevent.AttrTransformSubtype, step.Subtype)
	if len(step.Params) > 0 {
		kv = append(kv, attribute.KeyValue{Key: auditevent.AttrTransformParams, Value: toValue(step.Params)})
	}
	if input != nil {
		if h, err := canonical.Hash(input); err == nil {
			kv = append(kv, attribute.String(auditevent.AttrInputHash, h))
		} else {
			r.hashFailed(ctx, recordID, err)
			return
		}
	}
	r.emitRecord(ctx, auditevent.RecordTransform, kv, output, opts)
}

// Write records that a record was written to target.
func (r *Run) Write(ctx context.Context, target Dataset, recordID string, record map[string]any, opts ...EventOption) {
	r.written.Add(1)
	kv := datasetAttrs(nil, auditevent.AttrTargetNamespace, auditevent.AttrTargetName, target)
	kv = append(kv, attribute.String(auditevent.AttrRecordID, recordID))
	r.emitRecord(ctx, auditevent.RecordWrite, kv, record, opts)
}

// Delete records that the job deleted a record from target.
func (r *Run) Delete(ctx context.Context, target Dataset, recordID string, opts ...EventOption) {
	kv := datasetAttrs(nil, auditevent.AttrTargetNamespace, auditevent.AttrTargetName, target)
	kv = append(kv, attribute.String(auditevent.AttrRecordID, recordID),
		attribute.String(auditevent.AttrChangeType, auditevent.ChangeDelete))
	r.emitRecord(ctx, auditevent.RecordDelete, kv, nil, opts)
}

// Skip records that a record was deliberately not processed, and why.
func (r *Run) Skip(ctx context.Context, recordID, reason string, opts ...EventOption) {
	r.skipped.Add(1)
	kv := []attribute.KeyValue{
		attribute.String(auditevent.AttrRecordID, recordID),
		attribute.String(auditevent.AttrSkipReason, reason),
	}
	r.emitRecord(ctx, auditevent.RecordSkip, kv, nil, opts)
}

// Error records that processing a record failed.
func (r *Run) Error(ctx context.Context, recordID string, err error, opts ...EventOption) {
	r.errored.Add(1)
	kv := appendNonEmpty(nil, auditevent.AttrRecordID, recordID)
	kv = append(kv, attribute.String(auditevent.AttrErrorType, errorType(err)),
		attribute.String(auditevent.AttrErrorMessage, errorMessage(err)))
	r.emitRecord(ctx, auditevent.RecordError, kv, nil, opts)
}

// Validation records the outcome of a data quality rule.
func (r *Run) Validation(ctx context.Context, rule string, passed bool, column string, expected, actual any) {
	name, sev := auditevent.ValidationPass, log.SeverityInfo
	if !passed {
		name, sev = auditevent.ValidationFail, log.SeverityWarn
	}
	kv := []attribute.KeyValue{attribute.String(auditevent.AttrValidationRule, rule)}
	kv = appendNonEmpty(kv, auditevent.AttrValidationColumn, column)
	if expected != nil {
		kv = append(kv, attribute.KeyValue{Key: auditevent.AttrValidationExpected, Value: toValue(expected)})
	}
	if actual != nil {
		kv = append(kv, attribute.KeyValue{Key: auditevent.AttrValidationActual, Value: toValue(actual)})
	}
	r.emit(ctx, name, sev, kv)
}

// Checkpoint records a restart point: an id and a position (offset, LSN,
// file:line) with the number of records processed so far.
func (r *Run) Checkpoint(ctx context.Context, id, position string, processed int64) {
	kv := []attribute.KeyValue{attribute.Int64(auditevent.AttrCheckpointRecords, processed)}
	kv = appendNonEmpty(kv, auditevent.AttrCheckpointID, id)
	kv = appendNonEmpty(kv, auditevent.AttrCheckpointPosition, position)
	r.emit(ctx, auditevent.Checkpoint, log.SeverityInfo, kv)
}

// Counts returns the records counted so far.
func (r *Run) Counts() auditevent.Counters {
	return auditevent.Counters{Read: r.read.Load(), Written: r.written.Load(), Skipped: r.skipped.Load(), Errored: r.errored.Load()}
}

// End ends the run: err == nil means success. It emits the batch end event
// with the counters and ends the span. Calling it twice has no effect.
func (r *Run) End(ctx context.Context, err error) {
	if !r.ended.CompareAndSwap(false, true) {
		return
	}
	result := auditevent.ResultSuccess
	var ce interface{ Canceled() bool }
	switch {
	case errors.Is(err, context.Canceled) || (errors.As(err, &ce) && ce.Canceled()):
		result = auditevent.ResultCancellation
	case errors.Is(err, context.DeadlineExceeded):
		result = auditevent.ResultTimeout
	case err != nil:
		result = auditevent.ResultFailure
	}
	c := r.Counts()
	kv := []attribute.KeyValue{
		attribute.String(auditevent.AttrBatchResult, result),
		attribute.Int64(auditevent.AttrRecordsRead, c.Read),
		attribute.Int64(auditevent.AttrRecordsWrite, c.Written),
		attribute.Int64(auditevent.AttrRecordsSkip, c.Skipped),
		attribute.Int64(auditevent.AttrRecordsError, c.Errored),
	}
	sev := log.SeverityInfo
	if err != nil {
		sev = log.SeverityError
		kv = append(kv, attribute.String(auditevent.AttrErrorType, errorType(err)),
			attribute.String(auditevent.AttrErrorMessage, errorMessage(err)))
		r.span.SetStatus(codes.Error, err.Error())
	}
	r.emit(ctx, auditevent.BatchEnd, sev, kv)
	r.span.SetAttributes(kv...)
	r.span.End()
}

func (r *Run) emitRecord(ctx context.Context, name string, kv []attribute.KeyValue, record map[string]any, opts []EventOption) {
	for _, o := range opts {
		o(&kv)
	}
	withData := true
	for i := 0; i < len(kv); i++ {
		if kv[i].Key == noData {
			withData = false
			kv = append(kv[:i], kv[i+1:]...)
			i--
		}
	}
	if record != nil {
		h, err := canonical.Hash(record)
		if err != nil {
			r.hashFailed(ctx, recordIDOf(kv), err)
			return
		}
		kv = append(kv, attribute.String(auditevent.AttrRecordHash, h))
		if withData {
			kv = append(kv, attribute.KeyValue{Key: auditevent.AttrRecordData, Value: toValue(record)})
		}
	}
	sev := log.SeverityInfo
	switch name {
	case auditevent.RecordError:
		sev = log.SeverityError
	case auditevent.RecordSkip:
		sev = log.SeverityWarn
	}
	r.emit(ctx, name, sev, kv)
}

// hashFailed turns a record that cannot be hashed (NaN, invalid UTF-8,
// integers beyond 2^53) into a record error event instead of losing it.
func (r *Run) hashFailed(ctx context.Context, recordID string, err error) {
	r.Error(ctx, recordID, fmt.Errorf("record cannot be hashed: %w", err))
}

func recordIDOf(kv []attribute.KeyValue) string {
	for _, a := range kv {
		if a.Key == auditevent.AttrRecordID {
			return a.Value.AsString()
		}
	}
	return ""
}

func (r *Run) emit(ctx context.Context, name string, sev log.Severity, kv []attribute.KeyValue) {
	var rec log.Record
	now := time.Now()
	rec.SetEventName(name)
	rec.SetTimestamp(now)
	rec.SetObservedTimestamp(now)
	rec.SetSeverity(sev)
	rec.AddAttributes(attribute.String(auditevent.AttrEventID, auditevent.NewID()))
	rec.AddAttributes(r.common...)
	rec.AddAttributes(kv...)
	r.a.logger.Emit(ctx, rec)
}

func datasetAttrs(kv []attribute.KeyValue, nsKey, nameKey string, d Dataset) []attribute.KeyValue {
	kv = appendNonEmpty(kv, nsKey, d.Namespace)
	return append(kv, attribute.String(nameKey, d.Name))
}

func errorType(err error) string {
	if err == nil {
		return ""
	}
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	return fmt.Sprintf("%T", err)
}

func errorMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// toValue converts record values to OTel attribute values, keeping maps and
// slices structured so the collector can hash the same JSON the job hashed.
func toValue(v any) attribute.Value {
	switch t := v.(type) {
	case nil:
		return attribute.Value{}
	case string:
		return attribute.StringValue(t)
	case bool:
		return attribute.BoolValue(t)
	case int:
		return attribute.Int64Value(int64(t))
	case int32:
		return attribute.Int64Value(int64(t))
	case int64:
		return attribute.Int64Value(t)
	case float32:
		return attribute.Float64Value(float64(t))
	case float64:
		return attribute.Float64Value(t)
	case time.Time:
		// The same text encoding/json (and so canonical.Hash) produces.
		return attribute.StringValue(t.Format(time.RFC3339Nano))
	case []string:
		return attribute.StringSliceValue(t)
	case []any:
		vals := make([]attribute.Value, len(t))
		for i, e := range t {
			vals[i] = toValue(e)
		}
		return attribute.SliceValue(vals...)
	case map[string]any:
		kvs := make([]attribute.KeyValue, 0, len(t))
		for k, e := range t {
			kvs = append(kvs, attribute.KeyValue{Key: attribute.Key(k), Value: toValue(e)})
		}
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
		return attribute.MapValue(kvs...)
	case fmt.Stringer:
		return attribute.StringValue(t.String())
	}
	return attribute.StringValue(fmt.Sprint(v))
}

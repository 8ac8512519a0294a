package auditevent

import (
	"encoding/hex"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// The field tables map attribute keys to Event fields once, so reading,
// writing and listing attributes share one definition.
type (
	strField struct {
		key string
		ptr func(*Event) *string
	}
	listField struct {
		key string
		ptr func(*Event) *[]string
	}
	mapField struct {
		key string
		ptr func(*Event) *map[string]any
	}
	intField struct {
		key string
		ptr func(*Event) **int64
	}
	anyField struct {
		key string
		ptr func(*Event) *any
	}
)

var strFields = []strField{
	{AttrEventID, func(e *Event) *string { return &e.ID }},
	{AttrBatchID, func(e *Event) *string { return &e.BatchID }},
	{AttrParentBatchID, func(e *Event) *string { return &e.ParentBatchID }},
	{AttrBatchState, func(e *Event) *string { return &e.BatchState }},
	{AttrBatchResult, func(e *Event) *string { return &e.BatchResult }},
	{AttrRunType, func(e *Event) *string { return &e.RunType }},
	{AttrLogicalDate, func(e *Event) *string { return &e.LogicalDate }},
	{AttrJobName, func(e *Event) *string { return &e.JobName }},
	{AttrJobNamespace, func(e *Event) *string { return &e.JobNamespace }},
	{AttrJobVersion, func(e *Event) *string { return &e.JobVersion }},
	{AttrConfigHash, func(e *Event) *string { return &e.JobConfigHash }},
	{AttrAuthPrincipal, func(e *Event) *string { return &e.AuthPrincipal }},
	{AttrUserID, func(e *Event) *string { return &e.Actor.ID }},
	{AttrUserName, func(e *Event) *string { return &e.Actor.Name }},
	{AttrActorType, func(e *Event) *string { return &e.Actor.Type }},
	{AttrSourceNamespace, func(e *Event) *string { return &e.Source.Namespace }},
	{AttrSourceName, func(e *Event) *string { return &e.Source.Name }},
	{AttrTargetNamespace, func(e *Event) *string { return &e.Target.Namespace }},
	{AttrTargetName, func(e *Event) *string { return &e.Target.Name }},
	{AttrRecordID, func(e *Event) *string { return &e.RecordID }},
	{AttrRecordHash, func(e *Event) *string { return &e.RecordHash }},
	{AttrHashAlgorithm, func(e *Event) *string { return &e.HashAlgorithm }},
	{AttrSenderHash, func(e *Event) *string { return &e.SenderHash }},
	{AttrHashCheck, func(e *Event) *string { return &e.HashCheck }},
	{AttrPreviousHash, func(e *Event) *string { return &e.PreviousHash }},
	{AttrSkipReason, func(e *Event) *string { return &e.SkipReason }},
	{AttrPartition, func(e *Event) *string { return &e.Partition }},
	{AttrChangeType, func(e *Event) *string { return &e.ChangeType }},
	{AttrLineageID, func(e *Event) *string { return &e.LineageID }},
	{AttrInputHash, func(e *Event) *string { return &e.InputHash }},
	{AttrTransformName, func(e *Event) *string { return &e.Transform.Name }},
	{AttrTransformType, func(e *Event) *string { return &e.Transform.Type }},
	{AttrTransformSubtype, func(e *Event) *string { return &e.Transform.Subtype }},
	{AttrCheckpointID, func(e *Event) *string { return &e.CheckpointID }},
	{AttrCheckpointPosition, func(e *Event) *string { return &e.CheckpointPosition }},
	{AttrValidationRule, func(e *Event) *string { return &e.ValidationRule }},
	{AttrValidationSeverity, func(e *Event) *string { return &e.ValidationSeverity }},
	{AttrValidationColumn, func(e *Event) *string { return &e.ValidationColumn }},
	{AttrFindingType, func(e *Event) *string { return &e.FindingType }},
	{AttrFindingSeverity, func(e *Event) *string { return &e.FindingSeverity }},
	{AttrFindingMessage, func(e *Event) *string { return &e.FindingMessage }},
	{AttrPruneCutoff, func(e *Event) *string { return &e.Retention.Cutoff }},
	{AttrPrunePeriod, func(e *Event) *string { return &e.Retention.Period }},
	{AttrPruneMinimum, func(e *Event) *string { return &e.Retention.Minimum }},
	{AttrErrorType, func(e *Event) *string { return &e.ErrorType }},
	{AttrErrorMessage, func(e *Event) *string { return &e.ErrorMessage }},
	{AttrErrorStacktrace, func(e *Event) *string { return &e.ErrorStacktrace }},
	{AttrOriginalEvent, func(e *Event) *string { return &e.Original }},
	{AttrOriginalFormat, func(e *Event) *string { return &e.OriginalFormat }},
	{AttrDerivedBy, func(e *Event) *string { return &e.DerivedBy }},
}

var listFields = []listField{
	{AttrUserRoles, func(e *Event) *[]string { return &e.Actor.Roles }},
	{AttrRecordKeyFields, func(e *Event) *[]string { return &e.KeyFields }},
	{AttrChangedFields, func(e *Event) *[]string { return &e.ChangedFields }},
	{AttrInputRecordIDs, func(e *Event) *[]string { return &e.InputRecordIDs }},
	{AttrInputDatasets, func(e *Event) *[]string { return &e.InputDatasets }},
	{AttrOutputDatasets, func(e *Event) *[]string { return &e.OutputDatasets }},
	{AttrFindingRecords, func(e *Event) *[]string { return &e.FindingRecords }},
	{AttrFrameworks, func(e *Event) *[]string { return &e.Frameworks }},
	{AttrClassification, func(e *Event) *[]string { return &e.Classification }},
}

var mapFields = []mapField{
	{AttrRecordData, func(e *Event) *map[string]any { return &e.RecordData }},
	{AttrOldValue, func(e *Event) *map[string]any { return &e.OldValue }},
	{AttrNewValue, func(e *Event) *map[string]any { return &e.NewValue }},
	{AttrLineageChain, func(e *Event) *map[string]any { return &e.LineageChain }},
	{AttrColumnLineage, func(e *Event) *map[string]any { return &e.ColumnLineage }},
	{AttrTransformParams, func(e *Event) *map[string]any { return &e.Transform.Params }},
	{AttrJobConfig, func(e *Event) *map[string]any { return &e.JobConfig }},
}

var intFields = []intField{
	{AttrRecordCount, func(e *Event) **int64 { return &e.RecordCount }},
	{AttrCheckpointRecords, func(e *Event) **int64 { return &e.CheckpointRecords }},
	{AttrBytesRead, func(e *Event) **int64 { return &e.BytesRead }},
	{AttrBytesWritten, func(e *Event) **int64 { return &e.BytesWritten }},
	{AttrPruneFrom, func(e *Event) **int64 { return &e.Retention.FromSequence }},
	{AttrPruneThrough, func(e *Event) **int64 { return &e.Retention.ThroughSequence }},
	{AttrPruneEntries, func(e *Event) **int64 { return &e.Retention.Entries }},
	{AttrPruneRuns, func(e *Event) **int64 { return &e.Retention.Runs }},
	{AttrPruneCheckpoint, func(e *Event) **int64 { return &e.Retention.CheckpointSize }},
}

var anyFields = []anyField{
	{AttrValidationExpected, func(e *Event) *any { return &e.ValidationExpected }},
	{AttrValidationActual, func(e *Event) *any { return &e.ValidationActual }},
}

// counterKeys are the batch-end totals; any of them present creates Counters.
var counterKeys = [...]string{AttrRecordsRead, AttrRecordsWrite, AttrRecordsSkip, AttrRecordsError}

func counterPtr(c *Counters, i int) *int64 {
	return [...]*int64{&c.Read, &c.Written, &c.Skipped, &c.Errored}[i]
}

// changeKeys are the change-type totals; any of them present creates Changes.
var changeKeys = [...]string{AttrRecordsInserted, AttrRecordsUpdated, AttrRecordsDeleted, AttrRecordsUnchanged}

func changePtr(c *ChangeCounters, i int) *int64 {
	return [...]*int64{&c.Inserted, &c.Updated, &c.Deleted, &c.Unchanged}[i]
}

type setter func(e *Event, v any) bool

var setters = func() map[string]setter {
	m := map[string]setter{}
	for _, f := range strFields {
		m[f.key] = func(e *Event, v any) bool { s, ok := asString(v); *f.ptr(e) = s; return ok }
	}
	for _, f := range listFields {
		m[f.key] = func(e *Event, v any) bool { l, ok := asStrings(v); *f.ptr(e) = l; return ok }
	}
	for _, f := range mapFields {
		m[f.key] = func(e *Event, v any) bool { mv, ok := asMap(v); *f.ptr(e) = mv; return ok }
	}
	for _, f := range intFields {
		m[f.key] = func(e *Event, v any) bool {
			i, ok := asInt(v)
			if ok {
				*f.ptr(e) = &i
			}
			return ok
		}
	}
	for _, f := range anyFields {
		m[f.key] = func(e *Event, v any) bool { *f.ptr(e) = v; return true }
	}
	for i, k := range counterKeys {
		m[k] = func(e *Event, v any) bool {
			n, ok := asInt(v)
			if !ok {
				return false
			}
			if e.Counters == nil {
				e.Counters = &Counters{}
			}
			*counterPtr(e.Counters, i) = n
			return true
		}
	}
	for i, k := range changeKeys {
		m[k] = func(e *Event, v any) bool {
			n, ok := asInt(v)
			if !ok {
				return false
			}
			if e.Changes == nil {
				e.Changes = &ChangeCounters{}
			}
			*changePtr(e.Changes, i) = n
			return true
		}
	}
	m[AttrTransformSequence] = func(e *Event, v any) bool { n, ok := asInt(v); e.Transform.Sequence = n; return ok }
	return m
}()

// Set assigns the value of attribute key to the matching field, or to Extra
// for keys outside the model. It returns false when the value has the wrong
// type for the key (the value is then kept in Extra, not lost).
func (e *Event) Set(key string, v any) bool {
	if s, ok := setters[key]; ok {
		if s(e, v) {
			return true
		}
		e.SetExtra(key, v)
		return false
	}
	e.SetExtra(key, v)
	return true
}

// Attributes returns the event's attributes as a flat map of attribute key to
// value, leaving out empty fields. It is the inverse of Set.
func (e *Event) Attributes() map[string]any {
	m := make(map[string]any, 16+len(e.Extra))
	e.walk(func(k string, v any) {
		if l, ok := v.([]string); ok {
			v = stringsToAny(l)
		}
		m[k] = v
	})
	return m
}

// AttributeVisitor receives the attributes of an event by the type of their
// value, so that code inspecting every value (the receiver's limits) needs
// neither the map Attributes builds nor boxing.
type AttributeVisitor interface {
	String(key, value string)
	Strings(key string, values []string)
	Int(key string, value int64)
	// Value gets maps and the raw values of Extra and any-typed fields.
	Value(key string, value any)
}

// Visit calls v for every attribute that is set, in no particular order:
// the field tables in one place (walk, and so Attributes, use it too).
func (e *Event) Visit(v AttributeVisitor) {
	for k, x := range e.Extra {
		v.Value(k, x)
	}
	for _, f := range strFields {
		if s := *f.ptr(e); s != "" {
			v.String(f.key, s)
		}
	}
	for _, f := range listFields {
		if l := *f.ptr(e); len(l) > 0 {
			v.Strings(f.key, l)
		}
	}
	for _, f := range mapFields {
		if mv := *f.ptr(e); mv != nil {
			v.Value(f.key, mv)
		}
	}
	for _, f := range intFields {
		if p := *f.ptr(e); p != nil {
			v.Int(f.key, *p)
		}
	}
	for _, f := range anyFields {
		if x := *f.ptr(e); x != nil {
			v.Value(f.key, x)
		}
	}
	if e.Counters != nil {
		for i, k := range counterKeys {
			v.Int(k, *counterPtr(e.Counters, i))
		}
	}
	if e.Changes != nil {
		for i, k := range changeKeys {
			v.Int(k, *changePtr(e.Changes, i))
		}
	}
	if e.Transform.Sequence != 0 {
		v.Int(AttrTransformSequence, e.Transform.Sequence)
	}
}

// walk calls fn for every attribute that is set, with a string, []string,
// map[string]any, int64 or (for Extra and any-typed fields) raw value. It
// defines Attributes; the hot paths putAttributes, has and AppendCanonical
// follow the same tables without boxing (see their equivalence tests).
func (e *Event) walk(fn func(k string, v any)) { e.Visit(funcVisitor(fn)) }

// funcVisitor hands every value to one function, boxed.
type funcVisitor func(k string, v any)

func (f funcVisitor) String(k, v string)           { f(k, v) }
func (f funcVisitor) Strings(k string, v []string) { f(k, v) }
func (f funcVisitor) Int(k string, v int64)        { f(k, v) }
func (f funcVisitor) Value(k string, v any)        { f(k, v) }

// resourceFallback lists attributes a job may set once on its resource
// instead of on every event.
var resourceFallback = []string{AttrJobName, AttrJobNamespace, AttrJobVersion, AttrBatchID, AttrUserID, AttrUserName, AttrActorType}

// FromLogRecord reads a canonical event from a log record; res may be an empty
// resource. Values of the wrong type end up in Extra and are reported by
// Validate.
func FromLogRecord(lr plog.LogRecord, res pcommon.Resource) Event {
	var e Event
	e.Name = lr.EventName()
	if ts := lr.Timestamp(); ts != 0 {
		e.Time = TimeFromUnixNano(uint64(ts))
	} else if ots := lr.ObservedTimestamp(); ots != 0 {
		e.Time = TimeFromUnixNano(uint64(ots))
	}
	if id := lr.TraceID(); !id.IsEmpty() {
		e.TraceID = hex.EncodeToString(id[:])
	}
	if id := lr.SpanID(); !id.IsEmpty() {
		e.SpanID = hex.EncodeToString(id[:])
	}
	e.Severity = lr.SeverityText()
	if lr.Body().Type() != pcommon.ValueTypeEmpty {
		e.Body = lr.Body().AsString()
	}
	for k, v := range lr.Attributes().All() {
		// SDKs without EventName support send the name as an attribute.
		if k == AttrEventName && e.Name == "" {
			e.Name = v.AsString()
			continue
		}
		e.setValue(k, v)
	}
	if ra := res.Attributes(); ra.Len() > 0 {
		for _, k := range resourceFallback {
			v, ok := ra.Get(k)
			if !ok {
				continue
			}
			if _, ok := lr.Attributes().Get(k); !ok {
				e.setValue(k, v)
			}
		}
	}
	return e
}

// strPtrs and listPtrs give setValue direct access to string and list
// fields, so the common attribute values need no boxing through AsRaw.
var (
	strPtrs = func() map[string]func(*Event) *string {
		m := make(map[string]func(*Event) *string, len(strFields))
		for _, f := range strFields {
			m[f.key] = f.ptr
		}
		return m
	}()
	listPtrs = func() map[string]func(*Event) *[]string {
		m := make(map[string]func(*Event) *[]string, len(listFields))
		for _, f := range listFields {
			m[f.key] = f.ptr
		}
		return m
	}()
)

// setValue is Set(k, v.AsRaw()) with fast paths for string values of string
// fields and string slices of list fields.
func (e *Event) setValue(k string, v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if p, ok := strPtrs[k]; ok {
			*p(e) = v.Str()
			return
		}
	case pcommon.ValueTypeSlice:
		// An empty slice takes the generic path, which keeps it non-nil.
		if p, ok := listPtrs[k]; ok && v.Slice().Len() > 0 {
			sl := v.Slice()
			l := make([]string, sl.Len())
			allStr := true
			for i := range sl.Len() {
				if sv := sl.At(i); sv.Type() == pcommon.ValueTypeStr {
					l[i] = sv.Str()
				} else {
					allStr = false
					break
				}
			}
			if allStr {
				*p(e) = l
				return
			}
		}
	}
	e.Set(k, v.AsRaw())
}

// TimeFromUnixNano converts an OTLP time (unsigned nanoseconds since the Unix
// epoch) without the overflow of pcommon.Timestamp.AsTime, which reads
// values beyond 2262-04-11 as negative and so turns them into times before
// 1970.
func TimeFromUnixNano(ns uint64) time.Time {
	return time.Unix(int64(ns/1e9), int64(ns%1e9)).UTC()
}

// ToLogRecord writes e into lr, replacing lr's attributes. e.Time must lie in
// the range a log record holds (after 1970-01-01, before 2262-04-11); the
// receiver admits no other time.
func (e *Event) ToLogRecord(lr plog.LogRecord) {
	lr.SetEventName(e.Name)
	if !e.Time.IsZero() {
		lr.SetTimestamp(pcommon.NewTimestampFromTime(e.Time))
	}
	if lr.ObservedTimestamp() == 0 {
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	}
	if b, err := hex.DecodeString(e.TraceID); err == nil && len(b) == 16 {
		lr.SetTraceID(pcommon.TraceID(b))
	}
	if b, err := hex.DecodeString(e.SpanID); err == nil && len(b) == 8 {
		lr.SetSpanID(pcommon.SpanID(b))
	}
	if e.Severity != "" {
		lr.SetSeverityText(e.Severity)
	}
	if lr.SeverityNumber() == plog.SeverityNumberUnspecified {
		lr.SetSeverityNumber(DefaultSeverity(e.Name))
	}
	if e.Body != "" {
		lr.Body().SetStr(e.Body)
	}
	e.putAttributes(lr.Attributes())
}

// putAttributes writes the attributes straight into m, without building the
// intermediate map Attributes() returns: this is on every component's hot
// path. It visits attributes in walk's order but with typed values, so
// strings and lists are not boxed into interfaces on the way.
func (e *Event) putAttributes(m pcommon.Map) {
	m.Clear()
	m.EnsureCapacity(16 + len(e.Extra))
	for k, v := range e.Extra {
		switch t := v.(type) {
		case string:
			m.PutStr(k, t)
		case []string:
			putStrings(m, k, t)
		default:
			_ = m.PutEmpty(k).FromRaw(v)
		}
	}
	for _, f := range strFields {
		if s := *f.ptr(e); s != "" {
			m.PutStr(f.key, s)
		}
	}
	for _, f := range listFields {
		if l := *f.ptr(e); len(l) > 0 {
			putStrings(m, f.key, l)
		}
	}
	for _, f := range mapFields {
		if mv := *f.ptr(e); mv != nil {
			_ = m.PutEmptyMap(f.key).FromRaw(mv)
		}
	}
	for _, f := range intFields {
		if p := *f.ptr(e); p != nil {
			m.PutInt(f.key, *p)
		}
	}
	for _, f := range anyFields {
		if v := *f.ptr(e); v != nil {
			_ = m.PutEmpty(f.key).FromRaw(v)
		}
	}
	if e.Counters != nil {
		for i, k := range counterKeys {
			m.PutInt(k, *counterPtr(e.Counters, i))
		}
	}
	if e.Changes != nil {
		for i, k := range changeKeys {
			m.PutInt(k, *changePtr(e.Changes, i))
		}
	}
	if e.Transform.Sequence != 0 {
		m.PutInt(AttrTransformSequence, e.Transform.Sequence)
	}
}

func putStrings(m pcommon.Map, k string, l []string) {
	sl := m.PutEmptySlice(k)
	sl.EnsureCapacity(len(l))
	for _, s := range l {
		sl.AppendEmpty().SetStr(s)
	}
}

// has reports whether the attribute key is set (as a field, or in Extra),
// with the rules of walk but without walking every field.
func (e *Event) has(key string) bool {
	if s, ok := slotIndex[key]; ok && e.isSet(s) {
		return true
	}
	_, ok := e.Extra[key]
	return ok
}

// DefaultSeverity follows the conventions: errors are ERROR, skips and failed
// validations WARN, findings WARN, everything else INFO.
func DefaultSeverity(name string) plog.SeverityNumber {
	switch name {
	case RecordError:
		return plog.SeverityNumberError
	case RecordSkip, ValidationFail, Finding:
		return plog.SeverityNumberWarn
	}
	return plog.SeverityNumberInfo
}

// IsAttribute reports whether key is an attribute of the model (a field of
// Event rather than an extra attribute).
func IsAttribute(key string) bool { _, ok := setters[key]; return ok }

package lineageprocessor // import "github.com/batchaudit/batchaudit/processor/lineageprocessor"

import (
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/tracker"
)

// tracked lists the events the processor follows; everything else (including
// its own derived events) passes through untouched.
var tracked = map[string]bool{
	auditevent.RecordRead: true, auditevent.RecordTransform: true, auditevent.RecordWrite: true,
	auditevent.RecordSkip: true, auditevent.RecordError: true,
	auditevent.BatchStart: true, auditevent.BatchProgress: true, auditevent.BatchEnd: true,
}

// extract reads the attributes the tracker needs in one pass over the
// record's attributes; it avoids auditevent.FromLogRecord, which converts
// every attribute (record data included) and would dominate the cost.
func extract(lr plog.LogRecord, res pcommon.Resource, in *tracker.Input) {
	*in = tracker.Input{Name: lr.EventName()}
	if ts := lr.Timestamp(); ts != 0 {
		in.Time = ts.AsTime()
	} else if ts := lr.ObservedTimestamp(); ts != 0 {
		in.Time = ts.AsTime()
	}
	var c auditevent.Counters
	hasCounters := false
	for k, v := range lr.Attributes().All() {
		switch k {
		case auditevent.AttrBatchID:
			in.BatchID = str(v)
		case auditevent.AttrEventID:
			in.EventID = str(v)
		case auditevent.AttrJobName:
			in.JobName = str(v)
		case auditevent.AttrJobNamespace:
			in.JobNamespace = str(v)
		case auditevent.AttrParentBatchID:
			in.ParentBatchID = str(v)
		case auditevent.AttrBatchResult:
			in.Result = str(v)
		case auditevent.AttrOriginalFormat:
			in.OpenLineage = str(v) == "openlineage"
		case auditevent.AttrRecordID:
			in.RecordID = str(v)
		case auditevent.AttrLineageID:
			in.LineageID = str(v)
		case auditevent.AttrRecordHash:
			in.RecordHash = str(v)
		case auditevent.AttrSenderHash:
			in.SenderHash = str(v)
		case auditevent.AttrInputHash:
			in.InputHash = str(v)
		case auditevent.AttrInputRecordIDs:
			in.InputRecordIDs = strs(v)
		case auditevent.AttrSourceNamespace:
			in.Source.Namespace = str(v)
		case auditevent.AttrSourceName:
			in.Source.Name = str(v)
		case auditevent.AttrTargetNamespace:
			in.Target.Namespace = str(v)
		case auditevent.AttrTargetName:
			in.Target.Name = str(v)
		case auditevent.AttrTransformName:
			in.StepName = str(v)
		case auditevent.AttrTransformType:
			in.StepType = str(v)
		case auditevent.AttrTransformSubtype:
			in.StepSubtype = str(v)
		case auditevent.AttrTransformSequence:
			in.StepSeq = num(v)
		case auditevent.AttrTransformParams:
			if v.Type() == pcommon.ValueTypeMap {
				if b, err := canonical.Marshal(v.Map().AsRaw()); err == nil {
					in.StepParams = string(b)
				}
			}
		case auditevent.AttrRecordsRead:
			c.Read, hasCounters = num(v), true
		case auditevent.AttrRecordsWrite:
			c.Written, hasCounters = num(v), true
		case auditevent.AttrRecordsSkip:
			c.Skipped, hasCounters = num(v), true
		case auditevent.AttrRecordsError:
			c.Errored, hasCounters = num(v), true
		case auditevent.AttrInputDatasets:
			in.Inputs = strs(v)
		case auditevent.AttrOutputDatasets:
			in.Outputs = strs(v)
		case auditevent.AttrColumnLineage:
			if v.Type() == pcommon.ValueTypeMap {
				in.ColumnLineage = v.Map().AsRaw()
			}
		}
	}
	if hasCounters {
		in.Counters = &c
	}
	// Jobs may set run-wide attributes once on the resource.
	if in.BatchID == "" || in.JobName == "" || in.JobNamespace == "" {
		ra := res.Attributes()
		for _, f := range [...]struct {
			key string
			dst *string
		}{{auditevent.AttrBatchID, &in.BatchID}, {auditevent.AttrJobName, &in.JobName}, {auditevent.AttrJobNamespace, &in.JobNamespace}} {
			if *f.dst == "" {
				if v, ok := ra.Get(f.key); ok {
					*f.dst = str(v)
				}
			}
		}
	}
}

func str(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return v.AsString()
}

func strs(v pcommon.Value) []string {
	switch v.Type() {
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		out := make([]string, 0, s.Len())
		for i := 0; i < s.Len(); i++ {
			out = append(out, str(s.At(i)))
		}
		return out
	case pcommon.ValueTypeStr:
		return []string{v.Str()}
	}
	return nil
}

func num(v pcommon.Value) int64 {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int()
	case pcommon.ValueTypeDouble:
		return int64(v.Double())
	}
	n, _ := strconv.ParseInt(v.AsString(), 10, 64)
	return n
}

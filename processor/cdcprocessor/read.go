package cdcprocessor

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
)

// eventInfo is the part of a record event that classification reads. It is
// read straight from the log record (readEvent): converting every record
// event with auditevent.FromLogRecord was the largest cost per event.
type eventInfo struct {
	ID, Name, BatchID, RecordID, RecordHash, Partition string
	KeyFields                                          []string
	Target, Source                                     auditevent.Dataset
}

// readEvent fills it.ev and it.data from lr with the values
// auditevent.FromLogRecord would give for these fields (string attributes
// of another type are converted by auditevent.Event.Set, as there).
func readEvent(it *item, lr plog.LogRecord, res pcommon.Resource) {
	e := &it.ev
	e.Name = lr.EventName()
	hasBatch := false
	for k, v := range lr.Attributes().All() {
		var dst *string
		switch k {
		case auditevent.AttrRecordData:
			it.hasData = v.Type() == pcommon.ValueTypeMap
			if it.hasData {
				it.data = v.Map()
			}
			continue
		case auditevent.AttrRecordKeyFields:
			var ev auditevent.Event
			ev.Set(k, v.AsRaw())
			e.KeyFields = ev.KeyFields
			continue
		case auditevent.AttrEventID:
			dst = &e.ID
		case auditevent.AttrBatchID:
			dst, hasBatch = &e.BatchID, true
		case auditevent.AttrRecordID:
			dst = &e.RecordID
		case auditevent.AttrRecordHash:
			dst = &e.RecordHash
		case auditevent.AttrPartition:
			dst = &e.Partition
		case auditevent.AttrTargetNamespace:
			dst = &e.Target.Namespace
		case auditevent.AttrTargetName:
			dst = &e.Target.Name
		case auditevent.AttrSourceNamespace:
			dst = &e.Source.Namespace
		case auditevent.AttrSourceName:
			dst = &e.Source.Name
		default:
			continue
		}
		*dst = attrString(k, v)
	}
	if !hasBatch {
		// Jobs may set the batch id once on the resource.
		if v, ok := res.Attributes().Get(auditevent.AttrBatchID); ok {
			e.BatchID = attrString(auditevent.AttrBatchID, v)
		}
	}
}

// attrString is the value of string attribute k as auditevent reads it.
func attrString(k string, v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	var ev auditevent.Event
	ev.Set(k, v.AsRaw())
	switch k {
	case auditevent.AttrEventID:
		return ev.ID
	case auditevent.AttrBatchID:
		return ev.BatchID
	case auditevent.AttrRecordID:
		return ev.RecordID
	case auditevent.AttrRecordHash:
		return ev.RecordHash
	case auditevent.AttrPartition:
		return ev.Partition
	case auditevent.AttrTargetNamespace:
		return ev.Target.Namespace
	case auditevent.AttrTargetName:
		return ev.Target.Name
	case auditevent.AttrSourceNamespace:
		return ev.Source.Namespace
	case auditevent.AttrSourceName:
		return ev.Source.Name
	}
	return ""
}

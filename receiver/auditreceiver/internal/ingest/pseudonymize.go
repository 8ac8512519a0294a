package ingest

import (
	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// Pseudonymizer replaces personal values of accepted events by their keyed
// pseudonym (canonical.Pseudonym, "hmac-sha256:<hex>"): the same form
// cdcprocessor's redact.hash stores and reports look data subjects up by.
// It runs in finish, the one step every item of every protocol passes, so
// the journal, the processors' state and the store only ever see the
// pseudonyms. Equal values get equal pseudonyms, so keys, joins, change
// detection and lineage work on them as on the plaintext.
//
// A nil *Pseudonymizer changes nothing.
type Pseudonymizer struct {
	key      []byte
	recordID bool
	fields   map[string]bool
}

// NewPseudonymizer returns the pseudonymizer of record ids (recordID) and
// of the named top-level record fields under key, or nil when there is
// nothing to pseudonymize.
func NewPseudonymizer(key []byte, recordID bool, fields []string) *Pseudonymizer {
	if !recordID && len(fields) == 0 {
		return nil
	}
	p := &Pseudonymizer{key: key, recordID: recordID, fields: make(map[string]bool, len(fields))}
	for _, f := range fields {
		p.fields[f] = true
	}
	return p
}

// apply pseudonymizes ev in place:
//   - with recordID, every attribute naming a record: batchaudit.record.id,
//     batchaudit.lineage.id (a chain id often is the record's key),
//     batchaudit.lineage.input_record_ids and batchaudit.finding.record_ids;
//   - the listed fields of batchaudit.record.data, change.old_value and
//     change.new_value (top level: a listed field holding an object is
//     pseudonymized as a whole), and batchaudit.validation.actual when
//     batchaudit.validation.column is a listed field.
//
// Values already in pseudonym form are kept (canonical.Pseudonymize).
func (p *Pseudonymizer) apply(ev *auditevent.Event) {
	if p == nil {
		return
	}
	if p.recordID {
		ev.RecordID = p.id(ev.RecordID)
		ev.LineageID = p.id(ev.LineageID)
		ev.InputRecordIDs = p.ids(ev.InputRecordIDs)
		ev.FindingRecords = p.ids(ev.FindingRecords)
	}
	if len(p.fields) == 0 {
		return
	}
	p.record(ev.RecordData)
	p.record(ev.OldValue)
	p.record(ev.NewValue)
	if p.fields[ev.ValidationColumn] {
		ev.ValidationActual = canonical.Pseudonymize(p.key, ev.ValidationActual)
	}
}

func (p *Pseudonymizer) id(s string) string {
	if s == "" {
		return ""
	}
	return canonical.Pseudonymize(p.key, s).(string)
}

// ids returns a pseudonymized copy (the list may be shared with the
// parser's input).
func (p *Pseudonymizer) ids(l []string) []string {
	if len(l) == 0 {
		return l
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = p.id(s)
	}
	return out
}

// record pseudonymizes the listed fields of m in place: the maps are the
// event's own, decoded from the request.
func (p *Pseudonymizer) record(m map[string]any) {
	for k, v := range m {
		if p.fields[k] {
			m[k] = canonical.Pseudonymize(p.key, v)
		}
	}
}

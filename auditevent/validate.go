package auditevent

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one reason an event is invalid.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every problem of one event, so a client can fix them
// all at once.
type ValidationError struct {
	EventID   string       `json:"event_id,omitempty"`
	EventName string       `json:"event_name,omitempty"`
	Problems  []FieldError `json:"problems"`
}

func (v *ValidationError) Error() string {
	parts := make([]string, len(v.Problems))
	for i, p := range v.Problems {
		parts[i] = p.Field + ": " + p.Reason
	}
	name := v.EventName
	if name == "" {
		name = "event"
	}
	return fmt.Sprintf("invalid %s: %s", name, strings.Join(parts, "; "))
}

// required lists the fields each event name must carry beyond the common
// ones (id, name, time, batch id). Alternatives are separated by "|".
var required = map[string][]string{
	BatchStart: {AttrJobName},
	// A batch end without a job name belongs to the job of its run (the
	// store's run summary takes the name from the run's other events).
	BatchEnd:           {AttrBatchResult},
	RecordRead:         {AttrRecordID, AttrSourceName},
	RecordTransform:    {AttrRecordID + "|" + AttrLineageID, AttrTransformName},
	RecordWrite:        {AttrRecordID, AttrTargetName},
	RecordSkip:         {AttrRecordID, AttrSkipReason},
	RecordError:        {AttrErrorType + "|" + AttrErrorMessage},
	RecordDelete:       {AttrRecordID, AttrTargetName},
	ValidationPass:     {AttrValidationRule},
	ValidationFail:     {AttrValidationRule},
	Checkpoint:         {AttrCheckpointID + "|" + AttrCheckpointPosition},
	LineageRecord:      {AttrLineageID, AttrRecordID, AttrTargetName},
	LineageDataset:     {AttrSourceName, AttrTargetName},
	Finding:            {AttrFindingType, AttrFindingSeverity, AttrFindingMessage},
	OpenLineageJob:     {AttrJobName},
	OpenLineageDataset: {AttrTargetName},
	RetentionPrune:     {AttrPruneFrom, AttrPruneThrough, AttrPruneEntries, AttrPruneCheckpoint, AttrPruneCutoff},
}

// requiredAlts is required with the alternatives split once.
var requiredAlts = func() map[string][][]string {
	m := make(map[string][][]string, len(required))
	for name, reqs := range required {
		for _, r := range reqs {
			m[name] = append(m[name], strings.Split(r, "|"))
		}
	}
	return m
}()

// Required returns the attributes an event name requires besides the common
// ones; alternatives are written "a|b".
func Required(name string) []string { return required[name] }

var severities = map[string]bool{SeverityCritical: true, SeverityHigh: true, SeverityMedium: true, SeverityLow: true}

// Validate checks e against the model and returns a *ValidationError listing
// every problem, or nil. Problems name the field and what is wrong, never
// the value: they are answered to clients, logged and kept with dead
// letters, and a value may be personal data (docs/privacy.md).
func (e *Event) Validate() error {
	var probs []FieldError
	add := func(field, format string, args ...any) {
		probs = append(probs, FieldError{field, fmt.Sprintf(format, args...)})
	}
	info, known := names[e.Name]
	switch {
	case e.Name == "":
		add("event_name", "is required (one of the batchaudit.* event names, see docs/conventions.md)")
	case !known:
		add("event_name", "is not a known event name (see docs/conventions.md for the list)")
	}
	if e.ID == "" {
		add(AttrEventID, "is required")
	} else if len(e.ID) > 512 {
		add(AttrEventID, "is longer than 512 bytes")
	}
	if e.Time.IsZero() {
		add("timestamp", "is required")
	}
	if known && info.needsBatch && e.BatchID == "" {
		add(AttrBatchID, "is required for %s", e.Name)
	}
	for i, req := range required[e.Name] {
		present := false
		for _, alt := range requiredAlts[e.Name][i] {
			if e.has(alt) {
				present = true
				break
			}
		}
		if !present {
			if strings.Contains(req, "|") {
				add(req, "one of %s is required for %s", strings.ReplaceAll(req, "|", ", "), e.Name)
			} else {
				add(req, "is required for %s", e.Name)
			}
		}
	}
	if e.BatchResult != "" && !results[e.BatchResult] {
		add(AttrBatchResult, "is not one of success, failure, error, timeout, cancellation, skip")
	}
	if e.ChangeType != "" && !changeTypes[e.ChangeType] {
		add(AttrChangeType, "is not one of insert, update, delete, no_change")
	}
	if e.FindingSeverity != "" && !severities[e.FindingSeverity] {
		add(AttrFindingSeverity, "is not one of critical, high, medium, low")
	}
	for _, h := range [...]struct{ key, val string }{{AttrRecordHash, e.RecordHash}, {AttrPreviousHash, e.PreviousHash}, {AttrInputHash, e.InputHash}} {
		if h.val != "" && (e.HashAlgorithm == "" || e.HashAlgorithm == "sha256") && !isSHA256Hex(h.val) {
			add(h.key, "must be 64 lowercase hex characters (SHA-256 of the record's canonical JSON)")
		}
	}
	if c := e.Counters; c != nil && (c.Read < 0 || c.Written < 0 || c.Skipped < 0 || c.Errored < 0) {
		add("batchaudit.batch.records.*", "counters must not be negative")
	}
	if c := e.Changes; c != nil && (c.Inserted < 0 || c.Updated < 0 || c.Deleted < 0 || c.Unchanged < 0) {
		add("batchaudit.batch.records.*", "change counters must not be negative")
	}
	if r := e.Retention; e.Name == RetentionPrune && r.FromSequence != nil && r.ThroughSequence != nil && r.CheckpointSize != nil &&
		(*r.FromSequence < 1 || *r.ThroughSequence < *r.FromSequence || *r.CheckpointSize < *r.ThroughSequence) {
		add(AttrPruneThrough, "the range %d..%d must start at 1 or later and lie within the checkpoint of size %d",
			*r.FromSequence, *r.ThroughSequence, *r.CheckpointSize)
	}
	// Values of the wrong type were parked in Extra by Set; name them.
	var wrongType []string
	for k := range e.Extra {
		if _, modelled := setters[k]; modelled {
			wrongType = append(wrongType, k)
		}
	}
	sort.Strings(wrongType)
	for _, k := range wrongType {
		add(k, "has the wrong type (%T); see docs/conventions.md", e.Extra[k])
	}
	if len(probs) == 0 {
		return nil
	}
	return &ValidationError{EventID: e.ID, EventName: KnownOrEmpty(e.Name), Problems: probs}
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidResult reports whether s is one of the batch results.
func ValidResult(s string) bool { return results[s] }

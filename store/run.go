package store

import (
	"encoding/json"
	"slices"

	"github.com/batchaudit/batchaudit/auditevent"
)

// RunKeys are the attributes ApplyToRun reads (besides name and time), for
// readers that parse only those (auditevent.ParseSelected);
// TestRunKeysCoverApplyToRun keeps the list complete.
var RunKeys = auditevent.Select(auditevent.AttrBatchID, auditevent.AttrJobName, auditevent.AttrJobNamespace,
	auditevent.AttrParentBatchID, auditevent.AttrUserID, auditevent.AttrUserName, auditevent.AttrActorType,
	auditevent.AttrJobVersion, auditevent.AttrConfigHash, auditevent.AttrRunType, auditevent.AttrLogicalDate,
	auditevent.AttrAuthPrincipal, auditevent.AttrSourceNamespace, auditevent.AttrSourceName,
	auditevent.AttrTargetNamespace, auditevent.AttrTargetName, auditevent.AttrBatchResult, auditevent.AttrRecordsRead,
	auditevent.AttrRecordsInserted, auditevent.AttrChangeType)

// ApplyToRun folds one newly stored event into its run summary. Both backends
// call it for Stored outcomes only, so a redelivered event never counts twice.
// Counters come from the job's batch end event when it has them; until then
// they are counted from record events.
func ApplyToRun(r *Run, e *auditevent.Event) {
	if r.BatchID == "" {
		r.BatchID = e.BatchID
		r.Status = "running"
	}
	r.Events++
	setIfEmpty(&r.JobName, e.JobName)
	setIfEmpty(&r.JobNamespace, e.JobNamespace)
	setIfEmpty(&r.ParentBatchID, e.ParentBatchID)
	setIfEmpty(&r.Actor.ID, e.Actor.ID)
	setIfEmpty(&r.Actor.Name, e.Actor.Name)
	setIfEmpty(&r.Actor.Type, e.Actor.Type)
	setIfEmpty(&r.JobVersion, e.JobVersion)
	setIfEmpty(&r.ConfigHash, e.JobConfigHash)
	setIfEmpty(&r.RunType, e.RunType)
	setIfEmpty(&r.LogicalDate, e.LogicalDate)
	if e.AuthPrincipal != "" {
		r.Principals = addUnique(r.Principals, e.AuthPrincipal)
	}
	// The batch start event defines the start; before it arrives, the
	// earliest event seen stands in.
	if !e.Time.IsZero() && (r.Start.IsZero() || e.Name == auditevent.BatchStart || e.Time.Before(r.Start)) {
		r.Start = e.Time
	}
	if !e.Source.IsZero() {
		r.Sources = addUnique(r.Sources, e.Source.String())
	}
	if !e.Target.IsZero() && e.Name != auditevent.LineageDataset {
		r.Targets = addUnique(r.Targets, e.Target.String())
	}
	defer func() {
		if !r.End.IsZero() && !r.Start.IsZero() {
			r.Duration = r.End.Sub(r.Start).Seconds()
		}
	}()
	final := r.Status != "running" && r.Status != ""
	switch e.Name {
	case auditevent.RecordRead:
		if !final {
			r.Read++
		}
	case auditevent.RecordWrite:
		if !final {
			r.Written++
		}
	case auditevent.RecordSkip:
		if !final {
			r.Skipped++
		}
	case auditevent.RecordError:
		if !final {
			r.Errored++
		}
	case auditevent.Finding:
		r.Findings++
	case auditevent.BatchEnd:
		r.Status = e.BatchResult
		r.End = e.Time
		if c := e.Counters; c != nil {
			r.Read, r.Written, r.Skipped, r.Errored = c.Read, c.Written, c.Skipped, c.Errored
		}
	}
	if e.Name == auditevent.BatchEnd && e.Changes != nil {
		// cdcprocessor's totals include no_change events it did not forward.
		c := e.Changes
		r.Inserted, r.Updated, r.Deleted, r.Unchanged = c.Inserted, c.Updated, c.Deleted, c.Unchanged
		r.ChangesFinal = true
	}
	if r.ChangesFinal {
		return
	}
	switch e.ChangeType {
	case auditevent.ChangeInsert:
		r.Inserted++
	case auditevent.ChangeUpdate:
		r.Updated++
	case auditevent.ChangeDelete:
		r.Deleted++
	case auditevent.ChangeNoChange:
		r.Unchanged++
	}
}

func setIfEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func addUnique(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// DecodeRun reads a stored run summary for readers: the write-side
// bookkeeping (Through) is dropped, a summary is the folded facts only.
func DecodeRun(data []byte, r *Run) error {
	if err := DecodeStoredRun(data, r); err != nil {
		return err
	}
	r.Through = nil
	return nil
}

// DecodeStoredRun reads a stored run summary with its Through, for
// verification: what a summary covers tells a run written while it was
// being verified from a changed one.
func DecodeStoredRun(data []byte, r *Run) error {
	*r = Run{}
	return json.Unmarshal(data, r)
}

// DecodeSummary is DecodeStoredRun for Integrity.EachRunSummary: the Run
// known returns for these exact bytes when it recognises them, else the
// decoding (known may be nil).
func DecodeSummary(data []byte, known func([]byte) *Run, r *Run) error {
	if known != nil {
		if k := known(data); k != nil {
			*r = *k
			return nil
		}
	}
	return DecodeStoredRun(data, r)
}

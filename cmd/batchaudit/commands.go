package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/kibana"
	"github.com/batchaudit/batchaudit/store"
)

func runsCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	job := fs.String("job", "", "only runs of this job")
	status := fs.String("status", "", "only runs with this status (running, success, failure, error, timeout, cancellation, skip)")
	actor := fs.String("actor", "", "only runs of this actor (user.id)")
	children := fs.String("children", "", "only the child runs of this batch id")
	latest := fs.Bool("latest", false, "only the latest run of each job (ordered by job name)")
	period := periodFlags(fs, "runs that started")
	limit := fs.Int("limit", 0, "at most this many runs (0: all)")
	showContext := fs.Bool("context", false, "show each run's context: run type, logical date, job version, config hash, authenticated principals")
	changes := fs.Bool("changes", false, "only runs whose job version or config hash differs from the job's previous run")
	return func(ctx context.Context, c *cli, _ []string) error {
		q := store.RunQuery{JobName: *job, Status: *status, ActorID: *actor, ParentBatchID: *children,
			Latest: *latest, Limit: *limit}
		var err error
		if q.From, q.To, err = period(); err != nil {
			return err
		}
		if *changes || *showContext {
			runs, err := c.store.Runs(ctx, q)
			if err != nil {
				return err
			}
			return c.printRunContext(runs, *changes)
		}
		return emit(c, runView, "No runs found.", func(fn func(*store.Run) error) error {
			return c.store.EachRun(ctx, q, fn)
		})
	}
}

var runView = view[store.Run]{
	text: []string{"START", "BATCH ID", "JOB", "STATUS", "DURATION", "READ", "WRITTEN", "SKIPPED", "ERRORED",
		"INS", "UPD", "DEL", "SAME", "FINDINGS", "EVENTS"},
	textRow: func(r *store.Run) []string {
		return []string{formatTime(r.Start), r.BatchID, dash(r.JobName), r.Status, formatDuration(*r), itoa(r.Read),
			itoa(r.Written), itoa(r.Skipped), itoa(r.Errored), itoa(r.Inserted), itoa(r.Updated), itoa(r.Deleted),
			itoa(r.Unchanged), itoa(r.Findings), itoa(r.Events)}
	},
	csv: []string{"start", "end", "batch_id", "parent_batch_id", "job_name", "job_namespace", "actor_id", "actor_type",
		"status", "duration_seconds", "read", "written", "skipped", "errored", "inserted", "updated", "deleted",
		"unchanged", "findings", "events", "sources", "targets"},
	csvRow: func(r *store.Run) []string {
		return []string{csvTime(r.Start), csvTime(r.End), r.BatchID, r.ParentBatchID, r.JobName, r.JobNamespace,
			r.Actor.ID, r.Actor.Type, r.Status, strconv.FormatFloat(r.Duration, 'f', -1, 64), itoa(r.Read),
			itoa(r.Written), itoa(r.Skipped), itoa(r.Errored), itoa(r.Inserted), itoa(r.Updated), itoa(r.Deleted),
			itoa(r.Unchanged), itoa(r.Findings), itoa(r.Events), strings.Join(r.Sources, " "), strings.Join(r.Targets, " ")}
	},
	json: func(r *store.Run) any { return r },
}

func eventsCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	batch := fs.String("batch", "", "only events of this run (batch id)")
	var names stringList
	fs.Var(&names, "name", "only events with this name, e.g. record.write or batchaudit.record.write (repeatable)")
	dataset := fs.String("dataset", "", "only events reading or writing this dataset (name or namespace/name)")
	actor := fs.String("actor", "", "only events of this actor (user.id)")
	record := fs.String("record", "", "only events about this record id")
	change := fs.String("change", "", "only record events with this change type (insert, update, delete, no_change)")
	finding := fs.String("finding", "", "only findings of this type (e.g. data_loss, checksum_break)")
	lineage := fs.String("lineage", "", "only events of this lineage id")
	period := periodFlags(fs, "events")
	limit := fs.Int("limit", 0, "at most this many events (0: all)")
	kibanaURL, space := kibanaLinkFlags(fs, "the Run detail dashboard")
	return func(ctx context.Context, c *cli, _ []string) error {
		q := store.EventQuery{BatchID: *batch, Dataset: *dataset, ActorID: *actor, RecordID: *record,
			ChangeType: *change, FindingType: *finding, LineageID: *lineage, Limit: *limit}
		for _, n := range names {
			full, err := eventName(n)
			if err != nil {
				return err
			}
			q.Names = append(q.Names, full)
		}
		if *kibanaURL != "" {
			return c.printLink(kibana.RunDetailURL(*kibanaURL, *space, *batch))
		}
		if q.ChangeType != "" && !slices.Contains([]string{auditevent.ChangeInsert, auditevent.ChangeUpdate,
			auditevent.ChangeDelete, auditevent.ChangeNoChange}, q.ChangeType) {
			return fmt.Errorf("%w: --change %q is not one of insert, update, delete, no_change", errUsage, q.ChangeType)
		}
		var err error
		if q.From, q.To, err = period(); err != nil {
			return err
		}
		empty := "No events found."
		if only := (store.EventQuery{BatchID: *batch, Limit: q.Limit}); *batch != "" && reflect.DeepEqual(q, only) {
			empty = fmt.Sprintf("No events for batch %s.", *batch)
		}
		// Within one run the batch id column would repeat on every row.
		return c.printEvents(ctx, q, *batch == "", empty)
	}
}

// eventName accepts an event name with or without the "batchaudit." prefix.
func eventName(n string) (string, error) {
	if auditevent.Known(n) {
		return n, nil
	}
	if auditevent.Known("batchaudit." + n) {
		return "batchaudit." + n, nil
	}
	return "", fmt.Errorf("%w: --name %q is not an event name (see docs/conventions.md, e.g. record.write)", errUsage, n)
}

func historyCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	kibanaURL, space := kibanaLinkFlags(fs, "Kibana's Record history search")
	return func(ctx context.Context, c *cli, args []string) error {
		if *kibanaURL != "" {
			return c.printLink(kibana.RecordHistoryURL(*kibanaURL, *space, args[0]))
		}
		return c.printEvents(ctx, store.EventQuery{RecordID: args[0]}, true, fmt.Sprintf("No events for record %s.", args[0]))
	}
}

func deadLettersCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	period := periodFlags(fs, "dead letters of events")
	return func(ctx context.Context, c *cli, _ []string) error {
		from, to, err := period()
		if err != nil {
			return err
		}
		dls, err := c.store.DeadLetters(ctx, from, to, 0)
		if err != nil {
			return err
		}
		return emit(c, deadLetterView, "No dead letters.", func(fn func(*store.DeadLetter) error) error {
			for i := range dls {
				if err := fn(&dls[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

var deadLetterView = view[store.DeadLetter]{
	text: []string{"STREAM", "SEQ", "KIND", "TIME", "EVENT ID", "REASON"},
	textRow: func(d *store.DeadLetter) []string {
		return []string{d.Stream, itoa(d.Sequence), string(d.Kind), formatTime(d.Time), dash(d.EventID), oneLine(d.Reason)}
	},
	csv: []string{"stream", "sequence", "kind", "time", "event_id", "hash", "reason", "document"},
	csvRow: func(d *store.DeadLetter) []string {
		return []string{d.Stream, itoa(d.Sequence), string(d.Kind), csvTime(d.Time), d.EventID, d.Hash, d.Reason, d.Document}
	},
	json: func(d *store.DeadLetter) any { return d },
}

// eventJSON is an event as the CLI prints it: the canonical content that the
// hash covers plus the storage metadata.
type eventJSON struct {
	Stream   string    `json:"stream"`
	Sequence int64     `json:"sequence"`
	Hash     string    `json:"hash"`
	Ingested time.Time `json:"ingested"`
	Event    any       `json:"event"`
	// Unreadable, with the event id, stands for an event whose stored
	// document could not be read (see store.DecodeEvent).
	EventID    string `json:"event_id,omitempty"`
	Unreadable string `json:"unreadable,omitempty"`
}

func (c *cli) printEvents(ctx context.Context, q store.EventQuery, withBatch bool, empty string) error {
	v := eventView
	if !withBatch {
		v.text = slices.Delete(slices.Clone(v.text), 2, 3)
		v.textRow = func(e *store.StoredEvent) []string { return slices.Delete(eventView.textRow(e), 2, 3) }
	}
	return emit(c, v, empty, func(fn func(*store.StoredEvent) error) error { return c.store.EachEvent(ctx, q, fn) })
}

var eventView = view[store.StoredEvent]{
	text: []string{"SEQ", "TIME", "BATCH ID", "NAME", "RECORD", "DATASET", "DETAIL"},
	textRow: func(e *store.StoredEvent) []string {
		if e.Unreadable != "" {
			return []string{itoa(e.Sequence), formatTime(e.Time), "-", "UNREADABLE", "-", "-", oneLine("event " + e.ID + ": " + e.Unreadable)}
		}
		return []string{itoa(e.Sequence), formatTime(e.Time), dash(e.BatchID), strings.TrimPrefix(e.Name, "batchaudit."),
			dash(e.RecordID), dash(dataset(&e.Event)), dash(detail(&e.Event))}
	},
	csv: []string{"time", "stream", "sequence", "event_id", "batch_id", "job_name", "actor_id", "name", "record_id",
		"source", "target", "change_type", "changed_fields", "lineage_id", "finding_type", "finding_severity", "detail", "hash"},
	csvRow: func(e *store.StoredEvent) []string {
		if e.Unreadable != "" {
			return []string{csvTime(e.Time), e.Stream, itoa(e.Sequence), e.ID, "", "", "", "", "", "", "", "", "", "", "", "",
				"unreadable: " + e.Unreadable, e.Hash}
		}
		return []string{csvTime(e.Time), e.Stream, itoa(e.Sequence), e.ID, e.BatchID, e.JobName, e.Actor.ID, e.Name,
			e.RecordID, e.Source.String(), e.Target.String(), e.ChangeType, strings.Join(e.ChangedFields, " "),
			e.LineageID, e.FindingType, e.FindingSeverity, detail(&e.Event), e.Hash}
	},
	json: func(e *store.StoredEvent) any {
		if e.Unreadable != "" {
			return eventJSON{Stream: e.Stream, Sequence: e.Sequence, Hash: e.Hash, Ingested: e.Ingested, EventID: e.ID, Unreadable: e.Unreadable}
		}
		return eventJSON{Stream: e.Stream, Sequence: e.Sequence, Hash: e.Hash, Ingested: e.Ingested, Event: e.Canonical()}
	},
}

// dataset names where the event read from or wrote to.
func dataset(e *auditevent.Event) string {
	switch {
	case !e.Source.IsZero() && !e.Target.IsZero():
		return e.Source.String() + " -> " + e.Target.String()
	case !e.Source.IsZero():
		return e.Source.String()
	}
	return e.Target.String()
}

// detail picks the fields that explain the event.
func detail(e *auditevent.Event) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("result", e.BatchResult)
	add("state", e.BatchState)
	if c := e.Counters; c != nil {
		parts = append(parts, fmt.Sprintf("read=%d written=%d skipped=%d errored=%d", c.Read, c.Written, c.Skipped, c.Errored))
	}
	add("change", e.ChangeType)
	add("fields", strings.Join(e.ChangedFields, ","))
	add("transform", e.Transform.Name)
	add("skip", e.SkipReason)
	add("error", strings.TrimSpace(strings.Join([]string{e.ErrorType, e.ErrorMessage}, " ")))
	add("rule", e.ValidationRule)
	add("checkpoint", firstNonEmpty(e.CheckpointID, e.CheckpointPosition))
	add("lineage", e.LineageID)
	if e.RecordCount != nil {
		add("records", fmt.Sprint(*e.RecordCount))
	}
	if e.FindingType != "" {
		parts = append(parts, fmt.Sprintf("finding=%s severity=%s: %s", e.FindingType, e.FindingSeverity, e.FindingMessage))
	}
	return oneLine(strings.Join(parts, " "))
}

func (c *cli) writeJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func formatDuration(r store.Run) string {
	if r.End.IsZero() {
		if r.Status == "running" {
			return "running"
		}
		return "-"
	}
	return time.Duration(r.Duration * float64(time.Second)).Round(time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// oneLine keeps table rows on one line and bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:157]) + "..."
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// csvTime is RFC 3339 with nanoseconds, empty for no time.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

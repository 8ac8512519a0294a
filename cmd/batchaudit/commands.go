package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/kibana"
	"github.com/batchaudit/batchaudit/store"
)

func runsCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	job := fs.String("job", "", "only runs of this job")
	status := fs.String("status", "", "only runs with this status (running, success, failure, error, timeout, cancellation, skip)")
	since := fs.Duration("since", 0, "only runs that started within this duration (e.g. 24h)")
	limit := fs.Int("limit", 0, "at most this many runs (0: all)")
	showContext := fs.Bool("context", false, "show each run's context: run type, logical date, job version, config hash, authenticated principals")
	changes := fs.Bool("changes", false, "only runs whose job version or config hash differs from the job's previous run")
	return func(ctx context.Context, c *cli, _ []string) error {
		q := store.RunQuery{JobName: *job, Status: *status, Limit: *limit}
		if *since < 0 {
			return fmt.Errorf("%w: --since must be positive", errUsage)
		}
		if *since > 0 {
			q.From = time.Now().Add(-*since)
		}
		runs, err := c.store.Runs(ctx, q)
		if err != nil {
			return err
		}
		if *changes || *showContext {
			return c.printRunContext(runs, *changes)
		}
		if c.json {
			return c.writeJSON(nonNil(runs))
		}
		if len(runs) == 0 {
			fmt.Fprintln(c.out, "No runs found.")
			return nil
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "START\tBATCH ID\tJOB\tSTATUS\tDURATION\tREAD\tWRITTEN\tSKIPPED\tERRORED\tINS\tUPD\tDEL\tSAME\tFINDINGS\tEVENTS")
		for _, r := range runs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
				formatTime(r.Start), r.BatchID, dash(r.JobName), r.Status, formatDuration(r), r.Read, r.Written,
				r.Skipped, r.Errored, r.Inserted, r.Updated, r.Deleted, r.Unchanged, r.Findings, r.Events)
		}
		return tw.Flush()
	}
}

func eventsCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	batch := fs.String("batch", "", "the run's batch id (required)")
	var names stringList
	fs.Var(&names, "name", "only events with this name, e.g. batchaudit.record.write (repeatable)")
	limit := fs.Int("limit", 0, "at most this many events (0: all)")
	kibanaURL, space := kibanaLinkFlags(fs, "the Run detail dashboard")
	return func(ctx context.Context, c *cli, _ []string) error {
		if *batch == "" {
			return fmt.Errorf("%w: --batch ID is required (batchaudit runs lists the ids)", errUsage)
		}
		if *kibanaURL != "" {
			return c.printLink(kibana.RunDetailURL(*kibanaURL, *space, *batch))
		}
		events, err := c.store.Events(ctx, store.EventQuery{BatchID: *batch, Names: names, Limit: *limit})
		if err != nil {
			return err
		}
		return c.printEvents(events, false, fmt.Sprintf("No events for batch %s.", *batch))
	}
}

func historyCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	kibanaURL, space := kibanaLinkFlags(fs, "Kibana's Record history search")
	return func(ctx context.Context, c *cli, args []string) error {
		if *kibanaURL != "" {
			return c.printLink(kibana.RecordHistoryURL(*kibanaURL, *space, args[0]))
		}
		events, err := store.RecordHistory(ctx, c.store, args[0])
		if err != nil {
			return err
		}
		return c.printEvents(events, true, fmt.Sprintf("No events for record %s.", args[0]))
	}
}

func deadLettersCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	since := fs.Duration("since", 0, "only dead letters of events within this duration")
	return func(ctx context.Context, c *cli, _ []string) error {
		var from time.Time
		if *since > 0 {
			from = time.Now().Add(-*since)
		}
		dls, err := c.store.DeadLetters(ctx, from, time.Time{}, 0)
		if err != nil {
			return err
		}
		if c.json {
			return c.writeJSON(nonNil(dls))
		}
		if len(dls) == 0 {
			fmt.Fprintln(c.out, "No dead letters.")
			return nil
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tSEQ\tTIME\tEVENT ID\tREASON")
		for _, d := range dls {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", d.Stream, d.Sequence, formatTime(d.Time), dash(d.EventID), oneLine(d.Reason))
		}
		return tw.Flush()
	}
}

// eventJSON is an event as the CLI prints it: the canonical content that the
// hash covers plus the storage metadata.
type eventJSON struct {
	Stream   string    `json:"stream"`
	Sequence int64     `json:"sequence"`
	Hash     string    `json:"hash"`
	Ingested time.Time `json:"ingested"`
	Event    any       `json:"event"`
}

func (c *cli) printEvents(events []store.StoredEvent, withBatch bool, empty string) error {
	if c.json {
		out := make([]eventJSON, len(events))
		for i := range events {
			e := &events[i]
			out[i] = eventJSON{Stream: e.Stream, Sequence: e.Sequence, Hash: e.Hash, Ingested: e.Ingested, Event: e.Canonical()}
		}
		return c.writeJSON(out)
	}
	if len(events) == 0 {
		fmt.Fprintln(c.out, empty)
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	header := "SEQ\tTIME\tNAME\tRECORD\tDATASET\tDETAIL"
	if withBatch {
		header = "SEQ\tTIME\tBATCH ID\tNAME\tRECORD\tDATASET\tDETAIL"
	}
	fmt.Fprintln(tw, header)
	for i := range events {
		e := &events[i]
		batch := ""
		if withBatch {
			batch = dash(e.BatchID) + "\t"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s%s\t%s\t%s\t%s\n", e.Sequence, formatTime(e.Time), batch,
			strings.TrimPrefix(e.Name, "batchaudit."), dash(e.RecordID), dash(dataset(&e.Event)), dash(detail(&e.Event)))
	}
	return tw.Flush()
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

// nonNil makes an empty result print as [] rather than null.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
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

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

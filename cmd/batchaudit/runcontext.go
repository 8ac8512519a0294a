package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/batchaudit/batchaudit/store"
)

// printRunContext lists runs with their context (runs --context), or only
// the runs whose job version or configuration changed (runs --changes).
func (c *cli) printRunContext(runs []store.Run, onlyChanges bool) error {
	if c.format == formatCSV {
		return fmt.Errorf("%w: --context and --changes print text or JSON, not CSV", errUsage)
	}
	changed := map[string][]string{}
	if onlyChanges {
		cs := store.RunChanges(runs)
		if c.format == formatJSON {
			return c.writeJSON(nonNil(cs))
		}
		runs = runs[:0:0]
		for _, rc := range cs {
			runs = append(runs, rc.Run)
			changed[rc.BatchID] = rc.Changed
		}
	} else if c.format == formatJSON {
		return c.writeJSON(nonNil(runs))
	}
	if len(runs) == 0 {
		if onlyChanges {
			fmt.Fprintln(c.out, "No run changed its job version or configuration.")
		} else {
			fmt.Fprintln(c.out, "No runs found.")
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	head := "START\tBATCH ID\tJOB\tSTATUS\tTYPE\tLOGICAL DATE\tVERSION\tCONFIG\tPRINCIPAL"
	if onlyChanges {
		head += "\tCHANGED"
	}
	fmt.Fprintln(tw, head)
	for _, r := range runs {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", formatTime(r.Start), r.BatchID, dash(r.JobName), r.Status,
			dash(r.RunType), dash(r.LogicalDate), dash(r.JobVersion), dash(short(r.ConfigHash)), dash(strings.Join(r.Principals, ",")))
		if onlyChanges {
			line += "\t" + strings.Join(changed[r.BatchID], ",")
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// short abbreviates a hash for a table (the JSON output has it whole).
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// nonNil makes an empty result print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

package store

import (
	"cmp"
	"slices"
)

// RunChange is a run whose job version or configuration differs from the
// previous run of the same job.
type RunChange struct {
	Run
	// Previous is the job's run before this one (by start).
	Previous Run `json:"previous"`
	// Changed names what differs: job_version, config_hash.
	Changed []string `json:"changed"`
}

// RunChanges finds, among runs, those whose job version or configuration
// hash differs from the job's previous run (ordered by start): change
// management of batch jobs asks which run first ran new code or a new
// configuration. A run that does not report the value is not compared on
// it. Both backends answer it from Reader.Runs, e.g. with
// RunQuery{JobName: j}; the result is in start order.
func RunChanges(runs []Run) []RunChange {
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b Run) int {
		return cmp.Or(cmp.Compare(a.JobNamespace, b.JobNamespace), cmp.Compare(a.JobName, b.JobName),
			a.Start.Compare(b.Start), cmp.Compare(a.BatchID, b.BatchID))
	})
	var out []RunChange
	for i := 1; i < len(sorted); i++ {
		prev, r := sorted[i-1], sorted[i]
		if prev.JobName != r.JobName || prev.JobNamespace != r.JobNamespace {
			continue
		}
		var changed []string
		if r.JobVersion != "" && prev.JobVersion != "" && r.JobVersion != prev.JobVersion {
			changed = append(changed, "job_version")
		}
		if r.ConfigHash != "" && prev.ConfigHash != "" && r.ConfigHash != prev.ConfigHash {
			changed = append(changed, "config_hash")
		}
		if len(changed) > 0 {
			out = append(out, RunChange{Run: r, Previous: prev, Changed: changed})
		}
	}
	slices.SortStableFunc(out, func(a, b RunChange) int { return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.BatchID, b.BatchID)) })
	return out
}

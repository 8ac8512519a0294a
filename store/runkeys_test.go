package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// An event parsed with only RunKeys folds into its run exactly as the
// whole event does, for every event name and change type, with every field
// set (so a field ApplyToRun starts to read without a key fails here).
func TestRunKeysCoverApplyToRun(t *testing.T) {
	var all, sel store.Run
	for i, name := range auditevent.Names() {
		for _, change := range []string{"", auditevent.ChangeInsert, auditevent.ChangeUpdate, auditevent.ChangeDelete, auditevent.ChangeNoChange} {
			e := storetest.FullEvent(name, storetest.T0.Add(time.Duration(i)*time.Second))
			e.ChangeType, e.BatchID = change, "b1"
			if name == auditevent.BatchEnd && change != "" {
				e.Changes = nil // the change totals end the counting of change types
			}
			doc, err := e.AppendCanonical(nil)
			require.NoError(t, err)
			full, err := auditevent.ParseCanonical(doc)
			require.NoError(t, err)
			var part auditevent.Event
			require.NoError(t, auditevent.ParseSelected(doc, store.RunKeys, &part))
			var one, onePart store.Run
			store.ApplyToRun(&one, &full)
			store.ApplyToRun(&onePart, &part)
			require.Equal(t, one, onePart, "%s %s", name, change)
			store.ApplyToRun(&all, &full)
			store.ApplyToRun(&sel, &part)
		}
	}
	require.Equal(t, all, sel)
}

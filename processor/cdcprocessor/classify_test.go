package cdcprocessor

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

func hashOf(t *testing.T, v any) string {
	h, err := canonical.Hash(v)
	require.NoError(t, err)
	return h
}

// TestClassification covers every change type and the options that shape
// it. Each case feeds incoming batches in order and checks the outputs.
func TestClassification(t *testing.T) {
	a1 := order("A", 10)
	tests := []struct {
		name    string
		cfg     func(*Config)
		batches [][]auditevent.Event
		check   func(t *testing.T, outs [][]auditevent.Event)
	}{
		{
			name: "insert, no_change, update with changed fields and previous hash",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{write("e2", "b2", "A", order("A", 10))},
				{write("e3", "b3", "A", order("A", 12.5))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[0][0].ChangeType)
				assert.Empty(t, o[0][0].PreviousHash)
				assert.Equal(t, hashOf(t, a1), o[0][0].RecordHash, "record.hash set when the job did not")
				assert.Equal(t, "sha256", o[0][0].HashAlgorithm)
				assert.Equal(t, "no_change", o[1][0].ChangeType)
				assert.Equal(t, hashOf(t, a1), o[1][0].PreviousHash)
				assert.Empty(t, o[1][0].ChangedFields)
				assert.Equal(t, "update", o[2][0].ChangeType)
				assert.Equal(t, []string{"amount"}, o[2][0].ChangedFields)
				assert.Equal(t, o[1][0].RecordHash, o[2][0].PreviousHash, "previous_hash chains record hashes")
			},
		},
		{
			name: "ignore fields do not count as changes",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{write("e2", "b2", "A", order("A", 10, "updated_at", "2026-11-02"))},
				{write("e3", "b3", "A", order("A", 11, "updated_at", "2026-11-03"))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "no_change", o[1][0].ChangeType)
				assert.Equal(t, hashOf(t, a1), o[1][0].PreviousHash)
				assert.Equal(t, hashOf(t, order("A", 10, "updated_at", "2026-11-02")), o[1][0].RecordHash, "record.hash covers the whole record")
				assert.Equal(t, "update", o[2][0].ChangeType)
				assert.Equal(t, []string{"amount"}, o[2][0].ChangedFields)
				assert.Equal(t, o[1][0].RecordHash, o[2][0].PreviousHash)
			},
		},
		{
			name: "include fields limit comparison",
			cfg: func(c *Config) {
				c.Datasets[0].IgnoreFields = nil
				c.Datasets[0].IncludeFields = []string{"amount"}
			},
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{write("e2", "b2", "A", order("A", 10, "customer", "Bob"))},
				{write("e3", "b3", "A", order("A", 3, "customer", "Bob"))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "no_change", o[1][0].ChangeType)
				assert.Equal(t, "update", o[2][0].ChangeType)
				assert.Equal(t, []string{"amount"}, o[2][0].ChangedFields)
			},
		},
		{
			name: "configured key fields identify the record, not the record id",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "row-1", a1)},
				{write("e2", "b2", "row-2", order("A", 10))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[0][0].ChangeType)
				assert.Equal(t, "no_change", o[1][0].ChangeType)
			},
		},
		{
			name: "key fields from the event, compound",
			cfg:  func(c *Config) { c.Datasets[0].KeyFields = nil },
			batches: [][]auditevent.Event{
				{withKeys(write("e1", "b1", "x", order("A", 1, "line", 1)), "order_id", "line")},
				{withKeys(write("e2", "b2", "y", order("A", 1, "line", 2)), "order_id", "line")},
				{withKeys(write("e3", "b3", "z", order("A", 5, "line", 1)), "order_id", "line")},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[0][0].ChangeType)
				assert.Equal(t, "insert", o[1][0].ChangeType, "(A,2) is another key")
				assert.Equal(t, "update", o[2][0].ChangeType)
			},
		},
		{
			name: "record id is the key without key fields",
			cfg:  func(c *Config) { c.Datasets[0].KeyFields = nil },
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{write("e2", "b2", "B", a1)},
				{write("e3", "b3", "A", order("A", 2))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[1][0].ChangeType)
				assert.Equal(t, "update", o[2][0].ChangeType)
			},
		},
		{
			name: "added and removed fields are changed fields",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{write("e2", "b2", "A", order("A", 10, "customer", nil, "country", "DE"))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, []string{"country", "customer"}, o[1][0].ChangedFields)
			},
		},
		{
			name: "hash-only events classify by hash; changed fields unknown",
			batches: [][]auditevent.Event{
				{hashOnly(write("e1", "b1", "A", nil), hashOf(t, a1))},
				{hashOnly(write("e2", "b2", "A", nil), hashOf(t, a1))},
				{hashOnly(write("e3", "b3", "A", nil), hashOf(t, order("A", 2)))},
				{write("e4", "b4", "A", order("A", 3))},
				{write("e5", "b5", "A", order("A", 4))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[0][0].ChangeType)
				assert.Equal(t, "no_change", o[1][0].ChangeType)
				assert.Equal(t, "update", o[2][0].ChangeType)
				assert.Nil(t, o[2][0].ChangedFields, "no data: changed fields unknown")
				assert.Equal(t, hashOf(t, a1), o[2][0].PreviousHash)
				assert.Equal(t, "update", o[3][0].ChangeType)
				assert.Nil(t, o[3][0].ChangedFields, "previous field hashes unknown after a hash-only change")
				assert.Equal(t, []string{"amount"}, o[4][0].ChangedFields)
			},
		},
		{
			name: "explicit deletes remove the key; a later write inserts again",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{del("e2", "b2", "A"), del("e3", "b2", "nope")},
				{write("e4", "b3", "A", a1)},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "delete", o[1][0].ChangeType)
				assert.Equal(t, hashOf(t, a1), o[1][0].PreviousHash)
				assert.Equal(t, "delete", o[1][1].ChangeType)
				assert.Empty(t, o[1][1].PreviousHash, "unknown key: nothing before it")
				assert.Equal(t, "insert", o[2][0].ChangeType)
			},
		},
		{
			name: "keep_old_values with redaction",
			cfg: func(c *Config) {
				c.RedactionKey = "k"
				c.Datasets[0].KeepOldValues = true
				c.Datasets[0].Redact = RedactConfig{Hash: []string{"customer"}, Drop: []string{"iban"}}
			},
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", order("A", 10, "iban", "DE001"))},
				{write("e2", "b2", "A", order("A", 20, "customer", "Bob", "iban", "DE002"))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				u := o[1][0]
				assert.Equal(t, []string{"amount", "customer", "iban"}, u.ChangedFields)
				assert.Equal(t, 10.0, u.OldValue["amount"])
				assert.Equal(t, 20.0, u.NewValue["amount"])
				assert.True(t, strings.HasPrefix(u.OldValue["customer"].(string), "hmac-sha256:"))
				assert.NotEqual(t, u.OldValue["customer"], u.NewValue["customer"])
				assert.NotContains(t, u.OldValue, "iban")
				assert.NotContains(t, u.NewValue, "iban")
				assert.NotContains(t, u.RecordData, "iban")
				assert.True(t, strings.HasPrefix(u.RecordData["customer"].(string), "hmac-sha256:"))
				assert.Equal(t, "A", u.RecordData["order_id"])
				assert.Equal(t, hashOf(t, order("A", 20, "customer", "Bob", "iban", "DE002")), u.RecordHash,
					"hashes cover the real values")
			},
		},
		{
			name: "old values are opt-in",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
				{write("e2", "b2", "A", order("A", 20))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Nil(t, o[1][0].OldValue)
				assert.Nil(t, o[1][0].NewValue)
			},
		},
		{
			name: "record_data drop",
			cfg:  func(c *Config) { c.RecordData = RecordDataDrop },
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1)},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[0][0].ChangeType)
				assert.Nil(t, o[0][0].RecordData)
				assert.Equal(t, hashOf(t, a1), o[0][0].RecordHash)
			},
		},
		{
			name: "no_change keep exports and counts",
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1), write("e2", "b1", "B", order("B", 1)), end("b1", "success")},
				{write("e3", "b2", "A", a1), write("e4", "b2", "B", order("B", 2)), end("b2", "success")},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				require.Len(t, o[1], 3)
				assert.Equal(t, "no_change", o[1][0].ChangeType)
				assert.Equal(t, &auditevent.ChangeCounters{Updated: 1, Unchanged: 1}, o[1][2].Changes)
				assert.Equal(t, &auditevent.ChangeCounters{Inserted: 2}, o[0][2].Changes)
			},
		},
		{
			name: "no_change count: not exported, counted on batch end",
			cfg:  func(c *Config) { c.NoChange = NoChangeCount },
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1), write("e2", "b1", "B", order("B", 1)), end("b1", "success")},
				{write("e3", "b2", "A", a1), write("e4", "b2", "B", order("B", 2)), end("b2", "success")},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				require.Len(t, o[1], 2)
				assert.Equal(t, "update", o[1][0].ChangeType)
				assert.Equal(t, &auditevent.ChangeCounters{Updated: 1, Unchanged: 1}, o[1][1].Changes)
			},
		},
		{
			name: "no_change drop: not exported, still counted on batch end",
			cfg:  func(c *Config) { c.NoChange = NoChangeDrop },
			batches: [][]auditevent.Event{
				{write("e1", "b1", "A", a1), end("b1", "success")},
				{write("e3", "b2", "A", a1)},
				{end("b2", "success")},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Empty(t, o[1], "the only event was no_change")
				assert.Equal(t, &auditevent.ChangeCounters{Unchanged: 1}, o[2][0].Changes)
			},
		},
		{
			name: "unmatched datasets pass through untouched",
			batches: [][]auditevent.Event{
				{func() auditevent.Event { e := write("e1", "b1", "A", a1); e.Target.Name = "hr.people"; return e }()},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Empty(t, o[0][0].ChangeType)
				assert.Empty(t, o[0][0].RecordHash)
			},
		},
		{
			name: "events without key pass through unclassified",
			cfg:  func(c *Config) { c.Datasets[0].KeyFields = nil },
			batches: [][]auditevent.Event{
				{write("e1", "b1", "", a1), write("e2", "b1", "B", a1)},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				require.Len(t, o[0], 2, "nothing is lost")
				assert.Empty(t, o[0][0].ChangeType)
				assert.Equal(t, "insert", o[0][1].ChangeType)
			},
		},
		{
			name: "source datasets classify record reads",
			cfg: func(c *Config) {
				c.Datasets = append(c.Datasets, DatasetConfig{Name: "raw.*", Role: RoleSource})
			},
			batches: [][]auditevent.Event{
				{read("e1", "b1", "A", a1)},
				{read("e2", "b2", "A", order("A", 9))},
			},
			check: func(t *testing.T, o [][]auditevent.Event) {
				assert.Equal(t, "insert", o[0][0].ChangeType)
				assert.Equal(t, "update", o[1][0].ChangeType)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, defaultCfg(tt.cfg), memExt(state.NewMemoryClient()))
			var outs [][]auditevent.Event
			for _, b := range tt.batches {
				outs = append(outs, h.feed(b...))
			}
			tt.check(t, outs)
		})
	}
}

func withKeys(e auditevent.Event, keys ...string) auditevent.Event {
	e.KeyFields = keys
	return e
}

func hashOnly(e auditevent.Event, h string) auditevent.Event {
	e.RecordData, e.RecordHash = nil, h
	return e
}

func read(id, batch, recID string, data map[string]any) auditevent.Event {
	return auditevent.Event{ID: id, Name: auditevent.RecordRead, Time: t0, BatchID: batch, JobName: "orders",
		Source: auditevent.Dataset{Namespace: "file://in", Name: "raw.orders"}, RecordID: recID, RecordData: data}
}

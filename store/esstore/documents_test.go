package esstore

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// The values ECS allows for its categorisation fields (ECS reference,
// "ECS categorization fields", event.kind / event.category / event.type /
// event.outcome). Kibana's apps and ECS-based content filter on them.
var (
	ecsKinds      = set("alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal")
	ecsCategories = set("api", "authentication", "configuration", "database", "driver", "email", "file", "host",
		"iam", "intrusion_detection", "library", "malware", "network", "package", "process", "registry", "session",
		"threat", "vulnerability", "web")
	ecsTypes = set("access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "device",
		"end", "error", "group", "indicator", "info", "installation", "protocol", "start", "user")
	ecsOutcomes = set("failure", "success", "unknown")
)

func set(vs ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range vs {
		m[v] = true
	}
	return m
}

type ecsDoc struct {
	Event struct {
		Kind     string   `json:"kind"`
		Category []string `json:"category"`
		Type     []string `json:"type"`
		Outcome  string   `json:"outcome"`
		Action   string   `json:"action"`
	} `json:"event"`
	User struct {
		ID    string   `json:"id"`
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	} `json:"user"`
	Trace struct {
		ID string `json:"id"`
	} `json:"trace"`
	Message    string `json:"message"`
	Batchaudit struct {
		Category string `json:"category"`
	} `json:"batchaudit"`
}

func encodeForTest(t *testing.T, e *auditevent.Event) ecsDoc {
	t.Helper()
	doc, err := e.AppendCanonical(nil)
	require.NoError(t, err)
	b, err := encodeEvent(nil, e, "h", "main", 1, doc, "2026-11-01T02:00:00Z")
	require.NoError(t, err)
	var d ecsDoc
	require.NoError(t, json.Unmarshal(b, &d), string(b))
	return d
}

// TestECSCategorisation: every event name is stored with ECS values only,
// and each says what ECS defines it to say.
func TestECSCategorisation(t *testing.T) {
	want := map[string][3]string{ // kind, category, type
		auditevent.BatchStart: {"event", "process", "start"}, auditevent.BatchProgress: {"event", "process", "info"},
		auditevent.BatchEnd: {"event", "process", "end"}, auditevent.RecordRead: {"event", "database", "access"},
		auditevent.RecordTransform: {"event", "database", "change"}, auditevent.RecordWrite: {"event", "database", "change"},
		auditevent.RecordSkip: {"event", "database", "info"}, auditevent.RecordError: {"event", "database", "error"},
		auditevent.RecordDelete: {"event", "database", "deletion"}, auditevent.ValidationPass: {"event", "database", "info"},
		auditevent.ValidationFail: {"event", "database", "info"}, auditevent.Checkpoint: {"event", "process", "info"},
		auditevent.LineageRecord: {"event", "database", "info"}, auditevent.LineageDataset: {"event", "database", "info"},
		auditevent.Finding: {"alert", "database", "info"}, auditevent.OpenLineageJob: {"event", "process", "info"},
		auditevent.OpenLineageDataset: {"event", "database", "info"}, auditevent.RetentionPrune: {"event", "database", "deletion"},
	}
	evs := everyEventType("b-ecs")
	require.Len(t, want, len(auditevent.Names()), "every event name has an expectation")
	for i := range evs {
		e := &evs[i].Event
		d := encodeForTest(t, e)
		assert.True(t, ecsKinds[d.Event.Kind], "%s: kind %q", e.Name, d.Event.Kind)
		for _, c := range d.Event.Category {
			assert.True(t, ecsCategories[c], "%s: category %q", e.Name, c)
		}
		for _, ty := range d.Event.Type {
			assert.True(t, ecsTypes[ty], "%s: type %q", e.Name, ty)
		}
		assert.True(t, ecsOutcomes[d.Event.Outcome], "%s: outcome %q", e.Name, d.Event.Outcome)
		w := want[e.Name]
		assert.Equal(t, w[0], d.Event.Kind, e.Name)
		assert.Equal(t, []string{w[1]}, d.Event.Category, e.Name)
		if e.Name != auditevent.RecordWrite { // the write in the fixture is an update
			assert.Equal(t, []string{w[2]}, d.Event.Type, e.Name)
		}
		assert.Equal(t, e.Name, d.Event.Action)
		assert.Equal(t, auditevent.Category(e.Name), d.Batchaudit.Category, "batchaudit's own grouping is kept")
		assert.Equal(t, e.Actor.ID, d.User.ID)
		assert.Equal(t, e.Actor.Name, d.User.Name)
		assert.Equal(t, e.Actor.Roles, d.User.Roles)
		assert.Equal(t, e.TraceID, d.Trace.ID)
		assert.Equal(t, e.Body, d.Message, "message is the event's body, nothing else")
	}

	// A write's event.type follows its change type: a write that changed
	// nothing is not a "change".
	for change, typ := range map[string]string{auditevent.ChangeInsert: "creation", auditevent.ChangeUpdate: "change",
		auditevent.ChangeDelete: "deletion", auditevent.ChangeNoChange: "info", "": "change"} {
		e := evs[4].Event // the record.write
		require.Equal(t, auditevent.RecordWrite, e.Name)
		e.ChangeType = change
		assert.Equal(t, []string{typ}, encodeForTest(t, &e).Event.Type, "change type %q", change)
	}
}

// TestDeadLetterDocument: a dead letter is ECS kind pipeline_error and
// carries the batch id of the event it keeps.
func TestDeadLetterDocument(t *testing.T) {
	ev := everyEventType("b-dl")[2]
	it := &store.Entry{Kind: merkle.KindDeadLetter, Event: &ev, Document: []byte(`{"name":"x"}`), Hash: "d", EventHash: ev.Hash,
		Sequence: 7, Conflict: true, Reason: "conflict: ...", ExistingHash: "abc"}
	b, err := encodeDeadLetter(nil, it, "main", "2026-11-01T02:00:00Z")
	require.NoError(t, err)
	var d struct {
		Event struct {
			Kind     string `json:"kind"`
			Sequence int64  `json:"sequence"`
		} `json:"event"`
		Batchaudit struct {
			Conflict bool `json:"conflict"`
			Batch    struct {
				ID string `json:"id"`
			} `json:"batch"`
		} `json:"batchaudit"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	assert.Equal(t, "pipeline_error", d.Event.Kind)
	assert.Equal(t, int64(7), d.Event.Sequence)
	assert.True(t, d.Batchaudit.Conflict)
	assert.Equal(t, "b-dl", d.Batchaudit.Batch.ID)

	ev.BatchID = ""
	b, err = encodeDeadLetter(nil, it, "main", "2026-11-01T02:00:00Z")
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"batch"`, "no batch id, no batch object")
}

package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// The shape of the seed 000 AuditLogger: AuditEvent.to_dict() sends every
// field, null when unset, and keeps key facts in metadata. (The end-to-end
// test runs the seed's own modules; this pins the mapping.)
const seedBody = `[
 {"event_id":"6f1c4a52-8a0e-4c47-9d1e-3a3c1f0e0001","batch_id":"b-1","event_type":"batch_start","timestamp":"2026-11-01T02:00:00.000001",
  "source":"","target":"","record_id":null,"record_hash":null,"change_type":null,"old_value":null,"new_value":null,
  "actor":"scheduler@example.com","metadata":{"job_name":"daily_order_processing","config":{"min_amount":50,"environment":"production"}},
  "error_message":null,"error_stack":null},
 {"event_id":"6f1c4a52-8a0e-4c47-9d1e-3a3c1f0e0002","batch_id":"b-1","event_type":"record_read","timestamp":"2026-11-01T02:00:01",
  "source":"orders_db.orders","target":"","record_id":"1","record_hash":"c610ac00b61c63fb8f6c96045dff46426a0380331e1351c0406ce6567bef1b85",
  "change_type":null,"old_value":null,"new_value":null,"actor":"scheduler@example.com","metadata":{},"error_message":null,"error_stack":null},
 {"event_id":"6f1c4a52-8a0e-4c47-9d1e-3a3c1f0e0003","batch_id":"b-1","event_type":"record_skip","timestamp":"2026-11-01T02:00:02",
  "source":"orders_db.orders","target":"","record_id":"3","record_hash":null,"change_type":null,"old_value":null,"new_value":null,
  "actor":"scheduler@example.com","metadata":{"reason":"Filtered by transformer"},"error_message":null,"error_stack":null},
 {"event_id":"6f1c4a52-8a0e-4c47-9d1e-3a3c1f0e0004","batch_id":"b-1","event_type":"checkpoint","timestamp":"2026-11-01T02:00:03",
  "source":"","target":"","record_id":null,"record_hash":null,"change_type":null,"old_value":null,"new_value":null,
  "actor":"scheduler@example.com","metadata":{"processed":1000,"last_record_id":"1000","inserted":998,"updated":0,"skipped":2},
  "error_message":null,"error_stack":null},
 {"event_id":"6f1c4a52-8a0e-4c47-9d1e-3a3c1f0e0005","batch_id":"b-1","event_type":"batch_end","timestamp":"2026-11-01T02:00:04",
  "source":"","target":"","record_id":null,"record_hash":null,"change_type":null,"old_value":null,"new_value":null,
  "actor":"scheduler@example.com","metadata":{"status":"completed","records_read":3,"records_written":2,"records_skipped":1,
  "records_errored":0,"duration_seconds":4.02},"error_message":null,"error_stack":null}]`

func TestSeedLoggerShape(t *testing.T) {
	for name, parse := range map[string]func([]byte, Options) (*Result, error){"one-pass": JSONEvents, "general": jsonItemEvents} {
		t.Run(name, func(t *testing.T) {
			r, err := parse([]byte(seedBody), opts)
			require.NoError(t, err)
			require.Empty(t, r.Rejected)
			evs := events(t, r)
			require.Len(t, evs, 5)

			start := evs[0]
			assert.Equal(t, auditevent.BatchStart, start.Name)
			assert.Equal(t, "daily_order_processing", start.JobName)
			assert.Equal(t, map[string]any{"min_amount": int64(50), "environment": "production"}, start.JobConfig)
			h, err := canonical.Hash(start.JobConfig)
			require.NoError(t, err)
			assert.Equal(t, h, start.JobConfigHash, "the configuration's hash is computed")
			assert.True(t, start.Source.IsZero() && start.Target.IsZero(), "empty strings are no dataset")
			assert.Empty(t, start.Extra, "nothing left over: nulls are absent, metadata mapped")
			assert.Equal(t, "scheduler@example.com", start.Actor.ID)

			read := evs[1]
			assert.Equal(t, auditevent.Dataset{Name: "orders_db.orders"}, read.Source)
			assert.Equal(t, "c610ac00b61c63fb8f6c96045dff46426a0380331e1351c0406ce6567bef1b85", read.RecordHash,
				"without data a hash cannot be checked and stays as sent")
			assert.Empty(t, read.SenderHash)

			assert.Equal(t, "Filtered by transformer", evs[2].SkipReason)

			cp := evs[3]
			assert.Equal(t, "1000", cp.CheckpointPosition)
			require.NotNil(t, cp.CheckpointRecords)
			assert.Equal(t, int64(1000), *cp.CheckpointRecords)
			assert.Equal(t, map[string]any{"inserted": int64(998), "updated": int64(0), "skipped": int64(2)}, cp.Extra)

			end := evs[4]
			assert.Equal(t, auditevent.BatchEnd, end.Name)
			assert.Empty(t, end.JobName, "a batch end may leave the job name to its run")
			assert.Equal(t, auditevent.ResultSuccess, end.BatchResult)
			assert.Equal(t, &auditevent.Counters{Read: 3, Written: 2, Skipped: 1}, end.Counters)
			assert.Equal(t, map[string]any{"duration_seconds": 4.02}, end.Extra)
		})
	}
}

// Null is absence for every optional member, also the ones that take
// objects or are typed strictly.
func TestNullIsAbsent(t *testing.T) {
	body := `{"event_type":"record_write","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"1","target":"t",
	  "source":null,"actor":null,"user":null,"change_type":null,"op":null,"old_value":null,"new_value":null,"record_data":null,
	  "status":null,"result":null,"counters":null,"attributes":null,"metadata":null,"labels":null,"trace_id":null,"span_id":null,
	  "severity":null,"body":null,"message":null,"key_fields":null,"lineage_id":null,"input_record_ids":null,"expected":null,
	  "records_processed":null,"config":null,"run_type":null,"logical_date":null,"custom":null,
	  "actor_obj":{"x":null}}`
	r, err := JSONEvents([]byte(body), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected)
	ev := events(t, r)[0]
	assert.Equal(t, map[string]any{"actor_obj": map[string]any{"x": nil}}, ev.Extra, "nested nulls are data and kept")
	assert.True(t, ev.Source.IsZero())
	assert.Empty(t, ev.Actor)

	r, err = JSONEvents([]byte(`{"event_type":"batch_end","timestamp":"2026-11-01T02:00:00Z","batch_id":"b",
	  "actor":{"id":"u1","name":null,"roles":null},"counters":{"read":2,"written":null},"result":"success"}`), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected)
	ev = events(t, r)[0]
	assert.Equal(t, auditevent.Actor{ID: "u1"}, ev.Actor)
	assert.Equal(t, &auditevent.Counters{Read: 2}, ev.Counters)
}

// Metadata keys keep their meaning only where the event type gives them
// one and never reject an event: a record's own "status" stays an extra.
func TestMetadataNeverRejects(t *testing.T) {
	body := `[{"event_type":"record_write","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"1","target":"t",
	   "metadata":{"status":"pending","reason":"x","config":"cfg.yaml","version":3,"job_name":"j"}},
	  {"event_type":"batch_end","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","status":"success",
	   "metadata":{"status":"weird","records_read":"many","job_version":"abc123","run_type":"backfill","logical_date":"2026-10-31"}},
	  {"event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","job_name":"top",
	   "metadata":{"job_name":"meta","batchaudit.job.namespace":"ns","config":{"a":1},"config_hash":"mine"}}]`
	r, err := JSONEvents([]byte(body), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected)
	evs := events(t, r)
	w := evs[0]
	assert.Equal(t, "j", w.JobName)
	assert.Equal(t, map[string]any{"status": "pending", "reason": "x", "config": "cfg.yaml", "version": int64(3)}, w.Extra)
	end := evs[1]
	assert.Equal(t, auditevent.ResultSuccess, end.BatchResult, "the top-level member wins")
	assert.Equal(t, "abc123", end.JobVersion)
	assert.Equal(t, auditevent.RunBackfill, end.RunType)
	assert.Equal(t, "2026-10-31", end.LogicalDate)
	assert.Equal(t, map[string]any{"status": "weird", "records_read": "many"}, end.Extra)
	start := evs[2]
	assert.Equal(t, "top", start.JobName)
	assert.Equal(t, "ns", start.JobNamespace)
	assert.Equal(t, "mine", start.JobConfigHash, "a job's own config hash is kept")
	assert.Equal(t, map[string]any{"job_name": "meta"}, start.Extra)
}

// The ddeutil-workflow audit record (seed 001): one record per workflow
// release, written when it has run.
func TestWorkflowAuditRecord(t *testing.T) {
	body := `{"name":"data-pipeline","release":"2024-01-15T10:30:00","type":"rerun",
	  "context":{"params":{"source_table":"users","target_env":"prod"},
	             "jobs":{"extract":{"status":"SUCCESS","start_time":"2024-01-15T10:30:05","end_time":"2024-01-15T10:35:12"}},
	             "status":"SUCCESS"},
	  "parent_run_id":null,"run_id":"workflow-123","runs_metadata":{"execution_time":"300s","memory_usage":"512MB"}}`
	r, err := JSONEvents([]byte(body), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected)
	ev := events(t, r)[0]
	assert.Equal(t, auditevent.BatchEnd, ev.Name)
	assert.Equal(t, "workflow-123", ev.BatchID)
	assert.Equal(t, "data-pipeline", ev.JobName)
	assert.Equal(t, auditevent.ResultSuccess, ev.BatchResult)
	assert.Equal(t, auditevent.RunRerun, ev.RunType)
	assert.Equal(t, "2024-01-15T10:30:00Z", ev.LogicalDate)
	assert.Equal(t, time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), ev.Time)
	assert.Equal(t, map[string]any{"source_table": "users", "target_env": "prod"}, ev.JobConfig)
	assert.NotEmpty(t, ev.JobConfigHash)
	assert.Equal(t, map[string]any{"execution_time": "300s", "memory_usage": "512MB",
		"context": map[string]any{"jobs": map[string]any{"extract": map[string]any{"status": "SUCCESS",
			"start_time": "2024-01-15T10:30:05", "end_time": "2024-01-15T10:35:12"}}}}, ev.Extra)

	// Without a status the jobs and errors tell the result; with neither
	// the record is rejected with the reason.
	r, err = JSONEvents([]byte(`[{"name":"w","release":"2024-01-15T10:30:00","type":"event","run_id":"r2",
	    "context":{"jobs":{"a":{"status":"SUCCESS"},"b":{"status":"FAILED"}}}},
	  {"name":"w","release":"2024-01-15T10:30:00","run_id":"r3","context":{"errors":{"name":"WorkflowError","message":"boom"}}},
	  {"name":"w","release":"2024-01-15T10:30:00","run_id":"r4"}]`), opts)
	require.NoError(t, err)
	evs := events(t, r)
	require.Len(t, evs, 2)
	assert.Equal(t, auditevent.ResultFailure, evs[0].BatchResult)
	assert.Equal(t, auditevent.RunNormal, evs[0].RunType)
	assert.Equal(t, "WorkflowError", evs[1].ErrorType)
	assert.Equal(t, "boom", evs[1].ErrorMessage)
	require.Len(t, r.Rejected, 1)
	assert.Equal(t, "context.status", r.Rejected[0].Problems[0].Field)

	// A release member on an ordinary event is just an extra.
	r, err = JSONEvents([]byte(`{"type":"batch_start","release":"v1","name":"n","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","job_name":"j"}`), opts)
	require.NoError(t, err)
	ev = events(t, r)[0]
	assert.Equal(t, auditevent.BatchStart, ev.Name)
	assert.Equal(t, map[string]any{"release": "v1", "name": "n"}, ev.Extra)
}

func TestSenderHashInAnotherFormat(t *testing.T) {
	record := `{"id":"1","customer_name":"ALICE","total_amount":100.0,"status":"processed","n":3,"x":1e-05,"big":1e16,"f":1e15,` +
		`"small":0.0001,"neg":-0.0,"u":"é😀\u007f\n\"\\\\","nested":{"b":[1,2.5,null,true,false]},"Z":1}`
	var data map[string]any
	{
		r, err := JSONEvents([]byte(`{"event_type":"record_write","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"1","target":"t","record_data":`+record+`}`), opts)
		require.NoError(t, err)
		data = events(t, r)[0].RecordData
	}
	canon, err := canonical.Hash(data)
	require.NoError(t, err)
	for _, c := range []struct {
		sent, field, check string
	}{
		// Python: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()
		{"c610ac00b61c63fb8f6c96045dff46426a0380331e1351c0406ce6567bef1b85", "new_value", auditevent.HashCheckPythonJSON},
		// ... with separators=(",", ":")
		{"e6cdddd4e55ca4d01a345f9039e2a7d5f414ea308f0cbb8670cb71b9aec7e0d0", "record_data", auditevent.HashCheckPythonJSON},
		{"0000000000000000000000000000000000000000000000000000000000000000", "record_data", auditevent.HashCheckMismatch},
		{canon, "record_data", ""},
	} {
		body := `{"event_type":"record_write","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","record_id":"1","target":"t",` +
			`"record_hash":"` + c.sent + `","` + c.field + `":` + record + `}`
		r, err := JSONEvents([]byte(body), opts)
		require.NoError(t, err)
		require.Empty(t, r.Rejected)
		ev := events(t, r)[0]
		assert.Equal(t, canon, ev.RecordHash, "record.hash is the canonical hash of the data")
		assert.Equal(t, c.check, ev.HashCheck)
		if c.check == "" {
			assert.Empty(t, ev.SenderHash)
		} else {
			assert.Equal(t, c.sent, ev.SenderHash, "the sender's hash is kept")
		}
	}
}

func TestPrincipal(t *testing.T) {
	o := opts
	o.Principal = "loader"
	r, err := JSONEvents([]byte(`[{"event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","job_name":"j","actor":"claimed"},
	  {"event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","job_name":"j","batchaudit.auth.principal":"forged"}]`), o)
	require.NoError(t, err)
	ev := events(t, r)[0]
	assert.Equal(t, "loader", ev.AuthPrincipal)
	assert.Equal(t, "claimed", ev.Actor.ID, "the actor the job claims is kept apart")
	require.Len(t, r.Rejected, 1)
	assert.Equal(t, auditevent.AttrAuthPrincipal, r.Rejected[0].Problems[0].Field)

	// Nor can a job send the event that records a retention prune (verify
	// trusts it to explain removed entries).
	r, err = JSONEvents([]byte(`{"event_name":"batchaudit.retention.prune","timestamp":"2026-11-01T02:00:00Z",`+
		`"batchaudit.retention.from_sequence":1,"batchaudit.retention.through_sequence":5,"batchaudit.retention.entries":5,`+
		`"batchaudit.retention.checkpoint_size":9,"batchaudit.retention.cutoff":"2025-01-01T00:00:00Z"}`), o)
	require.NoError(t, err)
	require.Len(t, r.Rejected, 1)
	assert.Equal(t, []auditevent.FieldError{{Field: "event_name",
		Reason: "batchaudit.retention.prune is written by `batchaudit retention` only; a job cannot send it"}}, r.Rejected[0].Problems)

	// The principal is part of a derived id: the same event from two
	// principals is two events.
	body := []byte(`{"event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","job_name":"j"}`)
	a, _ := JSONEvents(body, o)
	o.Principal = "other"
	b, _ := JSONEvents(body, o)
	assert.NotEqual(t, a.IDs, b.IDs)
}

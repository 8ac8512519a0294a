package esstore

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
)

// These tests run against the SECURED real node (make es-up-secure): TLS
// with the CA scripts/es.sh generated, the roles of roles/*.json created by
// Setup, and API keys limited to them.

// secureDeployment runs Setup as the superuser for a fresh prefix and returns
// the node, the admin's config, and the writer and reader API keys.
func secureDeployment(t *testing.T) (*estest.SecureNode, Config, *SetupResult) {
	t.Helper()
	n := estest.RequireSecure(t)
	prefix := estest.UniqueName(t, "sec")
	estest.TrackDeployment(t, n.Admin, prefix, Indices(prefix))
	admin := NewDefaultConfig()
	admin.Endpoints = []string{n.URL}
	admin.Username, admin.Password = n.AdminUser, configopaque.String(n.AdminPassword)
	admin.TLS.CAFile = n.CAFile
	admin.IndexPrefix = prefix
	admin.Retry.InitialInterval, admin.Retry.MaxInterval = 10*time.Millisecond, 200*time.Millisecond
	res, err := Setup(ctx(t), admin, SetupOptions{Roles: true, RolePrefix: prefix, APIKeys: true}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{prefix + "_admin", prefix + "_reader", prefix + "_writer"}, res.Roles)
	require.NotEmpty(t, res.WriterAPIKey)
	require.NotEmpty(t, res.ReaderAPIKey)
	return n, admin, res
}

// withKey is cfg authenticated with an API key instead, templates left alone
// (what a least-privilege collector or reader runs with).
func withKey(cfg Config, key string) Config {
	cfg.Username, cfg.Password = "", ""
	cfg.APIKey = configopaque.String(key)
	cfg.InstallTemplates = false
	return cfg
}

// bulkStatuses sends an NDJSON bulk body and returns the HTTP status and
// each item's status and error type.
func bulkStatuses(t *testing.T, c *elasticsearch.Client, body string) (int, []string) {
	t.Helper()
	res, err := c.Bulk(strings.NewReader(body), c.Bulk.WithContext(ctx(t)))
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	var br struct {
		Items []map[string]struct {
			Status int `json:"status"`
			Error  struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(raw, &br), string(raw))
	var out []string
	for _, it := range br.Items {
		for action, r := range it {
			s := action + " " + http.StatusText(r.Status)
			if r.Status >= 300 {
				s += ": " + r.Error.Type
				if r.Status == http.StatusForbidden {
					require.Contains(t, r.Error.Reason, "is unauthorized")
				}
			}
			out = append(out, s)
		}
	}
	return res.StatusCode, out
}

// status performs req with c and returns the HTTP status and Warning header.
func status(t *testing.T, c *elasticsearch.Client, req esapi.Request) (int, string) {
	t.Helper()
	res, err := req.Do(ctx(t), c)
	require.NoError(t, err)
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header.Get("Warning")
}

func TestSecureWriterKeyAppendsOnly(t *testing.T) {
	n, admin, keys := secureDeployment(t)
	prefix := admin.IndexPrefix
	events, dead := EventsIndex(prefix), DeadLettersIndex(prefix)

	// The writer key stores the trail through the store, as the exporter does.
	w := openWith(t, withKey(admin, keys.WriterAPIKey))
	evs := everyEventType("sec-b1")
	res, err := w.Write(ctx(t), "sec", evs)
	require.NoError(t, err)
	assert.Equal(t, map[store.Outcome]int{store.Stored: len(evs)}, outcomes(res))
	// A resend is still a Duplicate, a changed event still a Conflict (kept as
	// a dead letter): both need the writer's read privilege for the lookup.
	res, err = w.Write(ctx(t), "sec", evs[:3])
	require.NoError(t, err)
	assert.Equal(t, map[store.Outcome]int{store.Duplicate: 3}, outcomes(res))
	changed := evs[4]
	changed.Event.Body = "altered"
	changed.Hash, _ = changed.Event.Hash()
	res, err = w.Write(ctx(t), "sec", []store.StoredEvent{changed})
	require.NoError(t, err)
	require.Equal(t, store.Conflict, res[0].Outcome, res[0].Reason)
	// Report records too (the report extension may run with this key).
	rec := store.ReportRecord{ID: "weekly/r1", Kind: "sox", From: t0, To: t0.Add(time.Hour), GeneratedAt: t0, ContentSHA256: "ab"}
	created, err := w.RecordReport(ctx(t), rec)
	require.NoError(t, err)
	assert.True(t, created)
	created, err = w.RecordReport(ctx(t), rec)
	require.NoError(t, err)
	assert.False(t, created, "recorded once")

	// The same key, straight at the REST API: every way to change or remove a
	// stored document is refused per bulk item, next to a create that works.
	writer := n.APIKeyClient(t, keys.WriterAPIKey)
	id := evs[0].ID
	code, items := bulkStatuses(t, writer, strings.Join([]string{
		`{"index":{"_index":"` + WriteAlias(events) + `","_id":"` + id + `"}}`, `{"x":1}`,
		`{"index":{"_index":"` + events + `","_id":"` + id + `"}}`, `{"x":1}`,
		`{"index":{"_index":"` + WriteAlias(events) + `"}}`, `{"x":1}`,
		`{"update":{"_index":"` + WriteAlias(events) + `","_id":"` + id + `"}}`, `{"doc":{"x":1}}`,
		`{"delete":{"_index":"` + WriteAlias(events) + `","_id":"` + id + `"}}`,
		`{"delete":{"_index":"` + events + `","_id":"` + id + `"}}`,
		`{"create":{"_index":"` + events + `","_id":"direct"}}`, `{"x":1}`,
		`{"create":{"_index":"` + prefix + `-other","_id":"x"}}`, `{"x":1}`,
		`{"create":{"_index":"` + WriteAlias(dead) + `","_id":"probe-` + id + `"}}`, `{"x":1}`,
	}, "\n")+"\n")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, []string{
		"index Forbidden: security_exception",  // overwrite through the alias
		"index Forbidden: security_exception",  // overwrite on the index itself
		"index Forbidden: security_exception",  // index without an id
		"update Forbidden: security_exception", // partial update
		"delete Forbidden: security_exception",
		"delete Forbidden: security_exception",
		"create Forbidden: security_exception", // no write on the index name, only on its alias
		"create Forbidden: security_exception", // auto-creating another index
		"create Created",                       // what the role is for
	}, items)

	for _, c := range []struct {
		what string
		req  esapi.Request
	}{
		{"_update", esapi.UpdateRequest{Index: events, DocumentID: id, Body: strings.NewReader(`{"doc":{"x":1}}`)}},
		{"_update via alias", esapi.UpdateRequest{Index: WriteAlias(events), DocumentID: id, Body: strings.NewReader(`{"doc":{"x":1}}`)}},
		{"PUT _doc", esapi.IndexRequest{Index: WriteAlias(events), DocumentID: id, Body: strings.NewReader(`{"x":1}`)}},
		{"DELETE _doc", esapi.DeleteRequest{Index: events, DocumentID: id}},
		{"DELETE _doc via alias", esapi.DeleteRequest{Index: WriteAlias(events), DocumentID: id}},
		{"DELETE index", esapi.IndicesDeleteRequest{Index: []string{events}}},
		{"DELETE index via alias", esapi.IndicesDeleteRequest{Index: []string{WriteAlias(events)}}},
		{"PUT _settings", esapi.IndicesPutSettingsRequest{Index: []string{events}, Body: strings.NewReader(`{"index":{"number_of_replicas":0}}`)}},
		{"PUT _settings via alias", esapi.IndicesPutSettingsRequest{Index: []string{WriteAlias(events)}, Body: strings.NewReader(`{"index":{"blocks.write":false}}`)}},
		{"close index", esapi.IndicesCloseRequest{Index: []string{events}}},
		{"create index", esapi.IndicesCreateRequest{Index: prefix + "-events2"}},
		{"remove alias", esapi.IndicesDeleteAliasRequest{Index: []string{events}, Name: []string{WriteAlias(events)}}},
		{"put template", esapi.IndicesPutIndexTemplateRequest{Name: events, Body: strings.NewReader(`{"index_patterns":["` + events + `"]}`)}},
		{"PUT _mapping on the index", esapi.IndicesPutMappingRequest{Index: []string{events}, Body: strings.NewReader(`{"properties":{"y":{"type":"keyword"}}}`)}},
		{"create API key", esapi.SecurityCreateAPIKeyRequest{Body: strings.NewReader(`{"name":"escalate"}`)}},
	} {
		code, _ := status(t, writer, c.req)
		assert.Equal(t, http.StatusForbidden, code, c.what)
	}

	// What create_doc cannot block in 8.x: a mapping update through the
	// alias, accepted with a deprecation warning. CheckMappings (batchaudit
	// verify) reports it.
	problems, _, err := w.CheckMappings(ctx(t))
	require.Error(t, err, "the writer has no view_index_metadata")
	require.True(t, consumererror.IsPermanent(err))
	reader := openWith(t, withKey(admin, keys.ReaderAPIKey))
	problems, notes, err := reader.CheckMappings(ctx(t))
	require.NoError(t, err)
	require.Empty(t, problems)
	require.Empty(t, notes)
	code, warning := status(t, writer, esapi.IndicesPutMappingRequest{Index: []string{WriteAlias(events)},
		Body: strings.NewReader(`{"runtime":{"event.id":{"type":"keyword"}},"properties":{"event":{"properties":{"id":{"type":"keyword","ignore_above":4}}}}}`)})
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, warning, "the index privilege [create_doc] allowed the update mapping action")
	problems, _, err = reader.CheckMappings(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"index " + events + ": runtime fields event.id are defined; they shadow stored fields in searches",
		"index " + events + `: field event.id is mapped as {"ignore_above":4,"type":"keyword"}, batchaudit maps it as {"ignore_above":1024,"type":"keyword"}`,
	}, problems)
}

func TestSecureReaderKeyReadsOnly(t *testing.T) {
	n, admin, keys := secureDeployment(t)
	w := openWith(t, withKey(admin, keys.WriterAPIKey))
	evs := everyEventType("sec-r1")
	_, err := w.Write(ctx(t), "sec", evs)
	require.NoError(t, err)

	r := openWith(t, withKey(admin, keys.ReaderAPIKey))
	got, err := r.Events(ctx(t), store.EventQuery{BatchID: "sec-r1"})
	require.NoError(t, err)
	assert.Len(t, got, len(evs))
	runs, err := r.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, int64(len(evs)), runs[0].Events)
	_, err = r.Runs(ctx(t), store.RunQuery{Latest: true})
	require.NoError(t, err)
	_, err = r.DeadLetters(ctx(t), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	last, err := r.LastSequence(ctx(t), "sec")
	require.NoError(t, err)
	assert.Equal(t, int64(len(evs)), last)

	// No write of any kind: the whole bulk request is refused.
	reader := n.APIKeyClient(t, keys.ReaderAPIKey)
	code, _ := bulkStatuses(t, reader, `{"create":{"_index":"`+WriteAlias(EventsIndex(admin.IndexPrefix))+`","_id":"r"}}`+"\n{}\n")
	assert.Equal(t, http.StatusForbidden, code)
	_, err = r.Write(ctx(t), "sec", simpleEvents("sec-r2", 1))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "%v", err)
	code, _ = status(t, reader, esapi.DeleteRequest{Index: EventsIndex(admin.IndexPrefix), DocumentID: evs[0].ID})
	assert.Equal(t, http.StatusForbidden, code)
	// Nor setup (templates, indices).
	_, err = Setup(ctx(t), withKey(admin, keys.ReaderAPIKey), SetupOptions{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 403")
}

func TestSecureTLS(t *testing.T) {
	n := estest.RequireSecure(t)
	cfg := NewDefaultConfig()
	cfg.Endpoints = []string{n.URL}
	cfg.Username, cfg.Password = n.AdminUser, configopaque.String(n.AdminPassword)
	cfg.InstallTemplates = false
	cfg.TLS.CAFile = n.CAFile
	s, err := New(ctx(t), cfg, nil)
	require.NoError(t, err, "the generated CA verifies the node")
	_, err = s.LastSequence(ctx(t), "none")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	for name, ca := range map[string]string{"another CA": estest.WriteOtherCA(t), "no CA (system roots)": ""} {
		cfg.TLS.CAFile = ca
		_, err = New(ctx(t), cfg, nil)
		require.Error(t, err, name)
		assert.True(t, consumererror.IsPermanent(err), name)
		assert.Contains(t, err.Error(), "x509: certificate signed by unknown authority", name)
		assert.Contains(t, err.Error(), "Elasticsearch's TLS certificate is not trusted; give the CA that signed it with tls.ca_file (CLI: --es-ca)", name)
	}

	cfg.TLS.CAFile = ""
	cfg.TLS.InsecureSkipVerify = true
	_, err = New(ctx(t), cfg, nil)
	require.ErrorContains(t, err, "tls.insecure_skip_verify: refused")
	cfg.AllowInsecureSkipVerify = true
	s, err = New(ctx(t), cfg, nil)
	require.NoError(t, err, "explicitly allowed")
	require.NoError(t, s.Close())
}

// TestSecureIndexLostUnderWriter deletes the events index under a
// least-privilege writer: its writes fail loudly (retryable, so the events
// stay queued), the lost history is reported, nothing auto-creates an
// unmapped index, and after `batchaudit es setup` the writer goes on.
func TestSecureIndexLostUnderWriter(t *testing.T) {
	n, admin, keys := secureDeployment(t)
	core, logs := observer.New(zap.WarnLevel)
	w, err := New(ctx(t), withKey(admin, keys.WriterAPIKey), zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	_, err = w.Write(ctx(t), "lost", simpleEvents("lost-1", 5))
	require.NoError(t, err)

	events := EventsIndex(admin.IndexPrefix)
	code, _ := status(t, n.Admin, esapi.IndicesDeleteRequest{Index: []string{events}})
	require.Equal(t, http.StatusOK, code)

	_, err = w.Write(ctx(t), "lost", simpleEvents("lost-2", 3))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "the events must stay queued: %v", err)
	assert.Contains(t, err.Error(), "["+WriteAlias(events)+"] is not an alias: the index was deleted, the node lost its data, or it was never set up")
	assert.Contains(t, err.Error(), "run `batchaudit es setup`")
	alarms := logs.FilterMessageSnippet("integrity alarm: the stored history of this stream vanished").All()
	require.Len(t, alarms, 1)
	assert.Equal(t, int64(5), alarms[0].ContextMap()["last_sequence_written"])
	assert.Equal(t, int64(0), alarms[0].ContextMap()["last_sequence_stored"])
	assert.Len(t, logs.FilterMessage("Elasticsearch index missing; nothing is stored until it is set up again").All(), 1)
	code, _ = status(t, n.Admin, esapi.IndicesExistsRequest{Index: []string{events}})
	assert.Equal(t, http.StatusNotFound, code, "no index was auto-created")

	// The administrator sets the index up again; the writer continues after
	// the last number it wrote, so verify sees the lost range as a gap.
	_, err = Setup(ctx(t), admin, SetupOptions{}, nil)
	require.NoError(t, err)
	res, err := w.Write(ctx(t), "lost", simpleEvents("lost-2", 3))
	require.NoError(t, err)
	assert.Equal(t, []int64{6, 7, 8}, []int64{res[0].Sequence, res[1].Sequence, res[2].Sequence})
	assert.Len(t, logs.FilterMessageSnippet("integrity alarm").All(), 1, "reported once")
}

// TestSecureBasicAuthUsers: native users holding the roles (no API keys)
// work too: the admin role alone sets the indices up again (--no-roles), and
// the writer role alone stores events over TLS with basic authentication.
func TestSecureBasicAuthUsers(t *testing.T) {
	n, admin, _ := secureDeployment(t)
	prefix := admin.IndexPrefix
	users := map[string]string{}
	for _, role := range []string{RoleAdmin, RoleWriter} {
		user, password := prefix+"-"+role, "pw-"+prefix
		code, _ := status(t, n.Admin, esapi.SecurityPutUserRequest{Username: user,
			Body: strings.NewReader(`{"password":"` + password + `","roles":["` + prefix + "_" + role + `"]}`)})
		require.Equal(t, http.StatusOK, code)
		t.Cleanup(func() { _, _ = status(t, n.Admin, esapi.SecurityDeleteUserRequest{Username: user}) })
		users[role] = user
	}
	as := func(role string) Config {
		cfg := withKey(admin, "")
		cfg.APIKey = ""
		cfg.Username, cfg.Password = users[role], configopaque.String("pw-"+prefix)
		return cfg
	}

	code, _ := status(t, n.Admin, esapi.IndicesDeleteRequest{Index: []string{RunsIndex(prefix)}})
	require.Equal(t, http.StatusOK, code)
	_, err := Setup(ctx(t), as(RoleAdmin), SetupOptions{}, nil)
	require.NoError(t, err, "the admin role installs templates, indices and aliases")
	_, err = Setup(ctx(t), as(RoleAdmin), SetupOptions{Roles: true, RolePrefix: prefix}, nil)
	require.ErrorContains(t, err, "HTTP 403", "but it cannot change roles")

	w := openWith(t, as(RoleWriter))
	res, err := w.Write(ctx(t), "basic", simpleEvents("basic-1", 3))
	require.NoError(t, err)
	assert.Equal(t, map[store.Outcome]int{store.Stored: 3}, outcomes(res))
	admin.InstallTemplates = false
	runs, err := openWith(t, admin).Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1, "the run summary went into the set-up runs index")
	assert.Equal(t, int64(3), runs[0].Events)
}

package auditreceiver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/basicauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadatatest"
)

func TestOpenLineageEndpoints(t *testing.T) {
	tr := startReceiver(t, testConfig(), nil, nil)
	for _, f := range []string{"run_start.json", "run_complete.json", "run_fail.json", "job_event.json", "dataset_event.json"} {
		res := tr.post(t, pathLineage, "application/json", testdata(t, "openlineage", f))
		require.Equal(t, http.StatusOK, res.status, "%s: %s", f, res.body)
		assert.Equal(t, 1, res.api.Accepted)
	}
	evs := sinkEvents(t, tr.sink)
	require.Len(t, evs, 5)
	assert.Equal(t, auditevent.BatchStart, evs[0].Name)
	assert.Equal(t, auditevent.BatchEnd, evs[1].Name)
	assert.Equal(t, auditevent.ResultSuccess, evs[1].BatchResult)
	assert.Equal(t, auditevent.ResultFailure, evs[2].BatchResult)
	assert.Equal(t, auditevent.OpenLineageJob, evs[3].Name)
	assert.Equal(t, auditevent.OpenLineageDataset, evs[4].Name)
	for _, ev := range evs {
		assert.Equal(t, "openlineage", ev.OriginalFormat)
		assert.True(t, json.Valid([]byte(ev.Original)))
	}

	// Batch form: an array with one invalid event.
	var arr []json.RawMessage
	for _, f := range []string{"run_start.json", "run_complete.json"} {
		arr = append(arr, testdata(t, "openlineage", f))
	}
	arr = append(arr, json.RawMessage(`{"eventType":"START","eventTime":"2026-11-01T00:00:00Z","run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34d"},"job":{"namespace":"n"},"producer":"p","schemaURL":"s"}`))
	body, _ := json.Marshal(arr)
	res := tr.post(t, pathLineageBatch, "application/json", body)
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	assert.Equal(t, 2, res.api.Accepted)
	require.Len(t, res.api.Errors, 1)
	assert.Equal(t, 2, res.api.Errors[0].Index)
	assert.Equal(t, "job.name", res.api.Errors[0].Problems[0].Field)

	var nd bytes.Buffer
	for _, raw := range arr[:2] {
		require.NoError(t, json.Compact(&nd, raw))
		nd.WriteByte('\n')
	}
	res = tr.post(t, pathLineageBatch, "application/x-ndjson", nd.Bytes())
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	assert.Equal(t, 2, res.api.Accepted)
}

// authHost serves an auth extension to the receiver.
type authHost struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h authHost) GetExtensions() map[component.ID]component.Component { return h.ext }

// startWithAuth starts a real contrib auth extension and an HTTP-only receiver that uses it.
func startWithAuth(t *testing.T, f extension.Factory, extCfg component.Config) *testReceiver {
	t.Helper()
	id := component.NewID(f.Type())
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), extCfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	host := authHost{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{id: ext}}

	cfg := testConfig()
	cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	cfg.Protocols.HTTP.Get().Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: id}})
	return startReceiver(t, cfg, nil, host)
}

// assertAuth checks that only requests carrying the valid Authorization header get through, on the
// JSON and the OTLP route alike.
func assertAuth(t *testing.T, tr *testReceiver, valid, invalid string) {
	t.Helper()
	res := tr.post(t, pathAuditEvents, "application/json", []byte(good("1")))
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.NotEmpty(t, res.api.Error)
	res = tr.post(t, pathAuditEvents, "application/json", []byte(good("1")), "Authorization", invalid)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	res = tr.post(t, pathAuditEvents, "application/json", []byte(good("1")), "Authorization", valid)
	assert.Equal(t, http.StatusOK, res.status, "%s", res.body)
	pb, _ := plogotlp.NewExportRequestFromLogs(auditLogs(1, 0)).MarshalProto()
	res = tr.post(t, pathOTLPLogs, contentTypeProto, pb)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	res = tr.post(t, pathOTLPLogs, contentTypeProto, pb, "Authorization", invalid)
	assert.Equal(t, http.StatusUnauthorized, res.status)
	assert.Len(t, sinkEvents(t, tr.sink), 1, "only the authenticated request is delivered")
}

func TestBearerTokenAuth(t *testing.T) {
	f := bearertokenauthextension.NewFactory()
	extCfg := f.CreateDefaultConfig().(*bearertokenauthextension.Config)
	extCfg.BearerToken = configopaque.String("s3cret")
	assertAuth(t, startWithAuth(t, f, extCfg), "Bearer s3cret", "Bearer wrong")
}

func TestBasicAuth(t *testing.T) {
	f := basicauthextension.NewFactory()
	extCfg := f.CreateDefaultConfig().(*basicauthextension.Config)
	extCfg.Htpasswd = &basicauthextension.HtpasswdSettings{Inline: "loader:s3cret\n"}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	assertAuth(t, startWithAuth(t, f, extCfg), basic("loader", "s3cret"), basic("loader", "wrong"))
}

// The principal the receiver authenticated is recorded on each event, apart
// from the actor the job claims: basic auth names the user; a bearer token
// that names nobody is recorded as a fingerprint, never as the token.
func TestAuthPrincipalRecorded(t *testing.T) {
	claimed := []byte(`{"event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","batch_id":"b","job_name":"j","actor":"admin"}`)

	bf := basicauthextension.NewFactory()
	bcfg := bf.CreateDefaultConfig().(*basicauthextension.Config)
	bcfg.Htpasswd = &basicauthextension.HtpasswdSettings{Inline: "loader:s3cret\n"}
	tr := startWithAuth(t, bf, bcfg)
	res := tr.post(t, pathAuditEvents, "application/json", claimed,
		"Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("loader:s3cret")))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	pb, _ := plogotlp.NewExportRequestFromLogs(auditLogs(1, 0)).MarshalProto()
	res = tr.post(t, pathOTLPLogs, contentTypeProto, pb, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("loader:s3cret")))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	evs := sinkEvents(t, tr.sink)
	require.Len(t, evs, 2)
	for _, ev := range evs {
		assert.Equal(t, "loader", ev.AuthPrincipal)
	}
	assert.Equal(t, "admin", evs[0].Actor.ID, "the claimed actor is kept apart")

	tf := bearertokenauthextension.NewFactory()
	tcfg := tf.CreateDefaultConfig().(*bearertokenauthextension.Config)
	tcfg.Tokens = []configopaque.String{"team-a-token", "team-b-token"}
	tr = startWithAuth(t, tf, tcfg)
	for _, tok := range []string{"team-a-token", "team-b-token"} {
		res = tr.post(t, pathAuditEvents, "application/json", claimed, "Authorization", "Bearer "+tok)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	}
	evs = sinkEvents(t, tr.sink)
	require.Len(t, evs, 2)
	assert.Regexp(t, `^token:sha256:[0-9a-f]{16}$`, evs[0].AuthPrincipal)
	assert.NotEqual(t, evs[0].AuthPrincipal, evs[1].AuthPrincipal, "two tokens, two principals")
	assert.NotContains(t, evs[0].AuthPrincipal, "team-a")

	// Without auth nobody is recorded.
	tr = startReceiver(t, testConfig(), nil, nil)
	res = tr.post(t, pathAuditEvents, "application/json", claimed)
	require.Equal(t, http.StatusOK, res.status)
	assert.Empty(t, sinkEvents(t, tr.sink)[0].AuthPrincipal)
}

func TestTelemetry(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	r, err := newReceiver(testConfig(), metadatatest.NewSettings(tt), new(consumertest.LogsSink))
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	tr := &testReceiver{auditReceiver: r, base: "http://" + r.httpAddr}

	tr.post(t, pathAuditEvents, "application/json", []byte("["+good("1")+","+good("2")+`,{"event_type":"x"}]`))
	tr.post(t, pathLineage, "application/json", testdata(t, "openlineage", "run_start.json"))

	metadatatest.AssertEqualReceiverAuditEventsAccepted(t, tt, []metricdata.DataPoint[int64]{
		{Value: 2, Attributes: attribute.NewSet(attribute.String("endpoint", pathAuditEvents), attribute.String("format", "json"))},
		{Value: 1, Attributes: attribute.NewSet(attribute.String("endpoint", pathLineage), attribute.String("format", "openlineage"))},
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	metadatatest.AssertEqualReceiverAuditEventsRefused(t, tt, []metricdata.DataPoint[int64]{
		{Value: 1, Attributes: attribute.NewSet(attribute.String("endpoint", pathAuditEvents), attribute.String("format", "json"), attribute.String("reason", "invalid"))},
	}, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
	_, err = tt.GetMetric("otelcol_receiver_audit_request_duration")
	require.NoError(t, err)
}

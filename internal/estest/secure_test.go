package estest

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecureNodeAsStarted checks what scripts/es.sh (BATCHAUDIT_ES_SECURE=1)
// promises in its settings file: HTTPS with its CA, and API keys and users
// of the batchaudit roles that authenticate but hold no cluster privilege.
func TestSecureNodeAsStarted(t *testing.T) {
	n := RequireSecure(t)
	assert.Regexp(t, `^https://`, n.URL)
	env, err := readEnvFile(SecureEnvFile())
	require.NoError(t, err)
	info, err := os.Stat(SecureEnvFile())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the file holds passwords")

	clients := map[string]*elasticsearch.Client{
		"writer key":  n.APIKeyClient(t, n.WriterAPIKey),
		"reader key":  n.APIKeyClient(t, n.ReaderAPIKey),
		"writer user": n.client(t, elasticsearch.Config{Username: env["BATCHAUDIT_ES_WRITER_USER"], Password: env["BATCHAUDIT_ES_WRITER_PASSWORD"]}),
		"reader user": n.client(t, elasticsearch.Config{Username: env["BATCHAUDIT_ES_READER_USER"], Password: env["BATCHAUDIT_ES_READER_PASSWORD"]}),
		"setup user":  n.client(t, elasticsearch.Config{Username: env["BATCHAUDIT_ES_SETUP_USER"], Password: env["BATCHAUDIT_ES_SETUP_PASSWORD"]}),
	}
	for name, c := range clients {
		res, err := c.Security.Authenticate()
		require.NoError(t, err, name)
		b := readBody(res)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", name, b)
		var who struct {
			Roles  []string `json:"roles"`
			APIKey *struct {
				Name string `json:"name"`
			} `json:"api_key"`
		}
		require.NoError(t, json.Unmarshal(b, &who))
		res, err = c.Cluster.Health()
		require.NoError(t, err, name)
		readBody(res)
		if name == "setup user" {
			assert.Equal(t, []string{"batchaudit_admin"}, who.Roles)
			assert.Equal(t, http.StatusOK, res.StatusCode, "the admin role has cluster monitor")
			continue
		}
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "%s has no cluster privilege", name)
		if who.APIKey == nil {
			assert.Len(t, who.Roles, 1, name)
			assert.Regexp(t, `^batchaudit_(writer|reader)$`, who.Roles[0], name)
		} else {
			assert.Regexp(t, `^batchaudit-(writer|reader) \(scripts/es.sh\)$`, who.APIKey.Name, name)
		}
	}
}

package estest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
)

// EnvSecureFile overrides where the secured node's connection settings
// are read from (default: the file scripts/es.sh writes for port 9201).
const EnvSecureFile = "BATCHAUDIT_ES_SECURE_ENV"

// SecureNode is the secured test node that `make es-up-secure`
// (BATCHAUDIT_ES_SECURE=1 scripts/es.sh up) starts: HTTPS with a CA of its
// own, the superuser elastic, the roles of store/esstore/roles and API keys
// for the default prefix "batchaudit".
type SecureNode struct {
	URL           string
	CAFile        string
	AdminUser     string // elastic, the bootstrap superuser
	AdminPassword string
	// API keys of the writer and reader users for the "batchaudit" indices.
	WriterAPIKey, ReaderAPIKey string
	// Admin is a client with the superuser's credentials: for setup,
	// checks and cleanup, never for the behaviour under test.
	Admin *elasticsearch.Client
}

// SecureEnvFile is the path of the secured node's settings file.
func SecureEnvFile() string {
	if f := strings.TrimSpace(os.Getenv(EnvSecureFile)); f != "" {
		return f
	}
	cache := os.Getenv("BATCHAUDIT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "batchaudit")
	}
	return filepath.Join(cache, "es", "secure-9201.env")
}

// RequireSecure returns the secured node. Like Require, it fails the test
// when the node is not there, and skips only with BATCHAUDIT_SKIP_ES=1.
func RequireSecure(t testing.TB) *SecureNode {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("SKIPPING secured Elasticsearch test because %s=1 is set: this test did NOT run. "+
			"Unset it and run `make es-up-secure` to run it.", EnvSkip)
	}
	hint := "Start the secured test node with `make es-up-secure` (BATCHAUDIT_ES_SECURE=1 scripts/es.sh up), " +
		"or point " + EnvSecureFile + " at the settings file of a running one."
	file := SecureEnvFile()
	env, err := readEnvFile(file)
	if err != nil {
		t.Fatalf("estest: no secured Elasticsearch node: %v\n%s", err, hint)
	}
	n := &SecureNode{
		URL: env["BATCHAUDIT_ES_SECURE_URL"], CAFile: env["BATCHAUDIT_ES_CA"],
		AdminUser: env["BATCHAUDIT_ES_ADMIN_USER"], AdminPassword: env["BATCHAUDIT_ES_ADMIN_PASSWORD"],
		WriterAPIKey: env["BATCHAUDIT_ES_WRITER_API_KEY"], ReaderAPIKey: env["BATCHAUDIT_ES_READER_API_KEY"],
	}
	if n.URL == "" || n.CAFile == "" || n.AdminPassword == "" {
		t.Fatalf("estest: %s lacks the URL, CA or admin password\n%s", file, hint)
	}
	n.Admin = n.client(t, elasticsearch.Config{Username: n.AdminUser, Password: n.AdminPassword})
	res, err := n.Admin.Cluster.Health(n.Admin.Cluster.Health.WithWaitForStatus("yellow"))
	if err != nil {
		t.Fatalf("estest: secured Elasticsearch at %s is not reachable: %v\n%s", n.URL, err, hint)
	}
	if body := readBody(res); res.IsError() {
		t.Fatalf("estest: secured Elasticsearch at %s: %s %s\n%s", n.URL, res.Status(), body, hint)
	}
	return n
}

// APIKeyClient is a client of the secured node that authenticates with the
// encoded API key and trusts the node's CA.
func (n *SecureNode) APIKeyClient(t testing.TB, apiKey string) *elasticsearch.Client {
	t.Helper()
	return n.client(t, elasticsearch.Config{APIKey: apiKey})
}

func (n *SecureNode) client(t testing.TB, cfg elasticsearch.Config) *elasticsearch.Client {
	t.Helper()
	ca, err := os.ReadFile(n.CAFile)
	if err != nil {
		t.Fatalf("estest: reading the secured node's CA: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.ResponseHeaderTimeout = requestTimeout
	cfg.Addresses = []string{n.URL}
	cfg.CACert = ca
	cfg.Transport = tr
	c, err := elasticsearch.NewClient(cfg)
	if err != nil {
		t.Fatalf("estest: client for %s: %v", n.URL, err)
	}
	return c
}

// TrackDeployment registers, for a least-privilege deployment a test sets
// up under prefix, the deletion of its index templates (named like the
// indices), its indices (prefix-*) and its roles and API keys (role prefix
// = prefix), in the order that works.
func TrackDeployment(t testing.TB, c *elasticsearch.Client, prefix string, indices []string) {
	t.Helper()
	for _, index := range indices {
		TrackIndexTemplate(t, c, index)
	}
	TrackIndex(t, c, prefix+"-*")
	TrackRoles(t, c, prefix)
}

// TrackRoles deletes the roles named <rolePrefix>_writer, _reader and
// _admin at cleanup and invalidates the API keys named like them (what
// batchaudit es setup --role-prefix creates).
func TrackRoles(t testing.TB, c *elasticsearch.Client, rolePrefix string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		for _, r := range []string{"writer", "reader", "admin"} {
			name := rolePrefix + "_" + r
			res, err := c.Security.InvalidateAPIKey(strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)),
				c.Security.InvalidateAPIKey.WithContext(ctx))
			if err != nil {
				t.Errorf("estest cleanup: invalidate API keys %s: %v", name, err)
			} else if b := readBody(res); res.IsError() && res.StatusCode != http.StatusNotFound {
				t.Errorf("estest cleanup: invalidate API keys %s: %s %s", name, res.Status(), b)
			}
			res, err = c.Security.DeleteRole(name, c.Security.DeleteRole.WithContext(ctx))
			if err != nil {
				t.Errorf("estest cleanup: delete role %s: %v", name, err)
			} else if b := readBody(res); res.IsError() && res.StatusCode != http.StatusNotFound {
				t.Errorf("estest cleanup: delete role %s: %s %s", name, res.Status(), b)
			}
		}
	})
}

// WriteOtherCA writes the PEM certificate of a fresh CA that signed nothing
// (for tests of a wrong CA) and returns its path.
func WriteOtherCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "some other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// readEnvFile reads KEY=VALUE lines (scripts/es.sh writes no quoting).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env, sc.Err()
}

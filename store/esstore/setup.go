package esstore

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.uber.org/zap"
)

// The roles of a least-privilege deployment, for the default index prefix
// "batchaudit": the files are the bodies of PUT _security/role/<name> and are
// what docs/elasticsearch.md and scripts/es.sh send with curl.
//
//go:embed roles/*.json
var roleFiles embed.FS

// Role names without their prefix; the files are named <prefix>_<role>.json.
const (
	RoleWriter = "writer"
	RoleReader = "reader"
	RoleAdmin  = "admin"
)

const defaultRolePrefix = "batchaudit"

// Roles returns the role definitions for the indices of indexPrefix, keyed
// by role name (<rolePrefix>_writer, _reader, _admin; rolePrefix ""
// means "batchaudit").
func Roles(indexPrefix, rolePrefix string) (map[string]json.RawMessage, error) {
	if rolePrefix == "" {
		rolePrefix = defaultRolePrefix
	}
	out := map[string]json.RawMessage{}
	for _, role := range []string{RoleWriter, RoleReader, RoleAdmin} {
		b, err := roleFiles.ReadFile(path.Join("roles", defaultRolePrefix+"_"+role+".json"))
		if err != nil {
			return nil, err
		}
		var def map[string]any
		if err := json.Unmarshal(b, &def); err != nil {
			return nil, fmt.Errorf("esstore: role %s: %w", role, err)
		}
		indices, _ := def["indices"].([]any)
		for _, ip := range indices {
			names, _ := ip.(map[string]any)["names"].([]any)
			for i, n := range names {
				s, _ := n.(string)
				rest, ok := strings.CutPrefix(s, defaultRolePrefix+"-")
				if !ok {
					return nil, fmt.Errorf("esstore: role %s: index name %q does not start with %s-", role, s, defaultRolePrefix)
				}
				names[i] = indexPrefix + "-" + rest
			}
		}
		if out[rolePrefix+"_"+role], err = json.Marshal(def); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SetupOptions says what Setup does besides installing the templates,
// indices and write aliases.
type SetupOptions struct {
	// Roles creates or updates the three roles (needs manage_security).
	Roles bool
	// RolePrefix names the roles <RolePrefix>_writer, ...; "" is "batchaudit".
	RolePrefix string
	// APIKeys creates an API key for the writer and one for the reader,
	// each limited to its role's privileges (needs manage_api_key).
	APIKeys bool
	// APIKeyExpiration is the keys' lifetime in Elasticsearch's time units
	// (e.g. "90d"); "" means they do not expire.
	APIKeyExpiration string
	// ILM installs the ILM policy (ilm.go) when the cluster has ILM, with
	// the delete phase after ILMDeleteAfter ("" keeps the file's 400d);
	// needs manage_ilm.
	ILM            bool
	ILMDeleteAfter string
}

// SetupResult is what Setup did.
type SetupResult struct {
	Roles        []string   `json:"roles,omitempty"`
	Indices      []string   `json:"indices"`
	WriterAPIKey string     `json:"writer_api_key,omitempty"`
	ReaderAPIKey string     `json:"reader_api_key,omitempty"`
	ILM          *ILMResult `json:"ilm,omitempty"`
}

// Setup prepares a cluster for a least-privilege collector: the roles (if
// asked), the index templates, the indices with batchaudit's mapping and
// their write aliases, and API keys (if asked). It is idempotent. The
// identity needs the admin role's privileges, plus manage_security for the
// roles and manage_api_key for the keys (the built-in superuser has all).
func Setup(ctx context.Context, cfg Config, opt SetupOptions, logger *zap.Logger) (*SetupResult, error) {
	cfg.InstallTemplates = false // installed below, reporting the error
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &SetupResult{}
	var roles map[string]json.RawMessage
	if opt.Roles || opt.APIKeys {
		if roles, err = Roles(cfg.IndexPrefix, opt.RolePrefix); err != nil {
			return nil, err
		}
	}
	if opt.Roles {
		for _, name := range slices.Sorted(maps.Keys(roles)) {
			body := roles[name]
			status, resp, err := s.perform(ctx, "put role "+name, func() esapi.Request {
				return esapi.SecurityPutRoleRequest{Name: name, Body: bytes.NewReader(body)}
			})
			if err != nil {
				return nil, err
			}
			if status != http.StatusOK {
				return nil, statusError("put role "+name, status, resp)
			}
			res.Roles = append(res.Roles, name)
		}
	}
	if err := s.installTemplates(ctx); err != nil {
		return nil, err
	}
	res.Indices = Indices(cfg.IndexPrefix)
	if opt.ILM {
		if res.ILM, err = s.installILM(ctx, opt.ILMDeleteAfter); err != nil {
			return nil, err
		}
	}
	if opt.APIKeys {
		rp := opt.RolePrefix
		if rp == "" {
			rp = defaultRolePrefix
		}
		if res.WriterAPIKey, err = s.createAPIKey(ctx, rp+"_"+RoleWriter, roles[rp+"_"+RoleWriter], opt.APIKeyExpiration); err != nil {
			return nil, err
		}
		if res.ReaderAPIKey, err = s.createAPIKey(ctx, rp+"_"+RoleReader, roles[rp+"_"+RoleReader], opt.APIKeyExpiration); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// createAPIKey creates a key limited to the role's privileges and returns
// its encoded form (what api_key and --es-api-key take).
func (s *Store) createAPIKey(ctx context.Context, role string, def json.RawMessage, expiration string) (string, error) {
	var d map[string]any
	if err := json.Unmarshal(def, &d); err != nil {
		return "", err
	}
	// A key's role descriptor holds privileges only.
	delete(d, "description")
	delete(d, "metadata")
	req := map[string]any{
		"name":             role,
		"role_descriptors": map[string]any{role: d},
		"metadata":         map[string]any{"managed_by": "batchaudit", "index_prefix": s.cfg.IndexPrefix},
	}
	if expiration != "" {
		req["expiration"] = expiration
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	status, resp, err := s.perform(ctx, "create API key "+role, func() esapi.Request {
		return esapi.SecurityCreateAPIKeyRequest{Body: bytes.NewReader(body)}
	})
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", statusError("create API key "+role, status, resp)
	}
	var r struct {
		Encoded string `json:"encoded"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || r.Encoded == "" {
		return "", fmt.Errorf("esstore: create API key %s: unexpected response: %s", role, truncate(string(resp), 300))
	}
	return r.Encoded, nil
}

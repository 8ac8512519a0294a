package esstore

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// The cluster-side alternative to `batchaudit retention`: an ILM policy
// (hot, warm read-only, delete). Setup installs it when asked and the
// cluster has ILM, but attaches it to no batchaudit index: ILM deletes
// whole indices by age, without the signed retention event verify needs
// to tell a prune from a deletion (docs/elasticsearch.md, "Retention").
//
//go:embed ilm/batchaudit-retention.json
var ilmPolicy []byte

// ILMPolicyName is the name the policy is installed under.
const ILMPolicyName = "batchaudit-retention"

// ILMPolicy returns the policy, with the delete phase's min_age set to
// deleteAfter (Elasticsearch time units, e.g. "400d"; "" keeps the file's).
func ILMPolicy(deleteAfter string) (json.RawMessage, error) {
	var p struct {
		Policy struct {
			Meta   map[string]any            `json:"_meta"`
			Phases map[string]map[string]any `json:"phases"`
		} `json:"policy"`
	}
	if err := json.Unmarshal(ilmPolicy, &p); err != nil {
		return nil, fmt.Errorf("esstore: ILM policy: %w", err)
	}
	del, ok := p.Policy.Phases["delete"]
	if !ok {
		return nil, fmt.Errorf("esstore: ILM policy has no delete phase")
	}
	if deleteAfter != "" {
		del["min_age"] = deleteAfter
	}
	return json.Marshal(p)
}

// ILMResult says whether Setup installed the ILM policy.
type ILMResult struct {
	Policy    string `json:"policy"`
	Installed bool   `json:"installed"`
	// Reason says why not: the cluster has no ILM.
	Reason string `json:"reason,omitempty"`
}

// installILM puts the policy. A cluster without the ILM module (like the
// integration-test distribution, which lacks x-pack-ilm) has no handler for
// _ilm: that is reported, not an error. It needs manage_ilm.
func (s *Store) installILM(ctx context.Context, deleteAfter string) (*ILMResult, error) {
	body, err := ILMPolicy(deleteAfter)
	if err != nil {
		return nil, err
	}
	status, resp, err := s.perform(ctx, "put ILM policy "+ILMPolicyName, func() esapi.Request {
		return esapi.ILMPutLifecycleRequest{Policy: ILMPolicyName, Body: bytes.NewReader(body)}
	})
	if err != nil {
		return nil, err
	}
	res := &ILMResult{Policy: ILMPolicyName}
	_, reason := errorOf(resp)
	switch {
	case status == http.StatusOK:
		res.Installed = true
	case (status == http.StatusBadRequest || status == http.StatusMethodNotAllowed) &&
		(strings.Contains(reason, "no handler found") || strings.Contains(reason, "Incorrect HTTP method")):
		res.Reason = "the cluster has no index lifecycle management (no handler for _ilm: the x-pack-ilm module is not loaded)"
	default:
		return nil, statusError("put ILM policy "+ILMPolicyName, status, resp)
	}
	return res, nil
}

package kibana

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// ImportOptions say where to import the saved objects and how to
// authenticate.
type ImportOptions struct {
	// KibanaURL is Kibana's base URL, e.g. https://kibana:5601 (with the
	// server.basePath if Kibana has one).
	KibanaURL string
	// Space is the Kibana space id; "" or "default" is the default space.
	Space string
	// Username and Password authenticate with basic authentication.
	Username, Password string
	// APIKey (the base64 "encoded" value Elasticsearch returns for an API
	// key) authenticates instead of Username/Password when set.
	APIKey string
	// CAFile is a PEM file of certificate authorities to trust for https, in
	// addition to the system's.
	CAFile string
	// IndexPrefix names the indices the data views read (default
	// DefaultPrefix).
	IndexPrefix string
	// Timeout bounds the request (default 60s).
	Timeout time.Duration
}

// ImportResult is Kibana's answer to a successful import.
type ImportResult struct {
	// Objects is the number of saved objects sent; SuccessCount how many
	// Kibana imported.
	Objects, SuccessCount int
	// URL is the space's base URL.
	URL string
	// Dashboards are the links to the imported dashboards, by title.
	Dashboards []Link
}

// Link is a titled URL.
type Link struct{ Title, URL string }

// importResponse is the body of the saved objects import API's answer.
type importResponse struct {
	Success        bool            `json:"success"`
	SuccessCount   int             `json:"successCount"`
	SuccessResults []importSuccess `json:"successResults"`
	Errors         []importError   `json:"errors"`
}

// importSuccess is one imported object. Kibana 8 keeps the ids of these
// types unique across spaces, so a copy imported into a second space gets
// a new id, which Kibana reports as destinationId.
type importSuccess struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	DestinationID string `json:"destinationId"`
}

type importError struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Title string `json:"title"`
	Meta  struct {
		Title string `json:"title"`
	} `json:"meta"`
	Error json.RawMessage `json:"error"`
}

// uploadName is the file name of the upload: Kibana accepts only files
// ending in .ndjson.
const uploadName = "batchaudit.ndjson"

// Import sends the saved objects to Kibana's saved objects import API
// (POST [/s/<space>]/api/saved_objects/_import?overwrite=true, the NDJSON
// as the multipart/form-data field "file", with the kbn-xsrf header).
// overwrite makes it idempotent: the objects have fixed ids, so a second
// import replaces them instead of adding copies. It fails unless Kibana
// reports every object imported.
func Import(ctx context.Context, o ImportOptions) (*ImportResult, error) {
	base, err := baseURL(o.KibanaURL)
	if err != nil {
		return nil, err
	}
	sp, err := spacePath(o.Space)
	if err != nil {
		return nil, err
	}
	prefix := o.IndexPrefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	ndjson, err := NDJSON(prefix)
	if err != nil {
		return nil, err
	}
	client, err := httpClient(o)
	if err != nil {
		return nil, err
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, uploadName))
	h.Set("Content-Type", "application/ndjson")
	part, err := mw.CreatePart(h)
	if err != nil {
		return nil, err
	}
	if _, err := part.Write(ndjson); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	endpoint := base + sp + "/api/saved_objects/_import?overwrite=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("kbn-xsrf", "true")
	switch {
	case o.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+o.APIKey)
	case o.Username != "" || o.Password != "":
		req.SetBasicAuth(o.Username, o.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kibana import: %w", err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("kibana import: reading the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("kibana import: %s: check the credentials (--user/--password, --api-key) and that the "+
			"user may manage saved objects in the space: %s", resp.Status, oneLine(respBody))
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("kibana import: %s from %s: is this Kibana (with its base path), and does the space exist? %s",
			resp.Status, endpoint, oneLine(respBody))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("kibana import: %s: %s", resp.Status, oneLine(respBody))
	}
	var r importResponse
	if err := json.Unmarshal(respBody, &r); err != nil {
		return nil, fmt.Errorf("kibana import: unexpected answer (%v): %s", err, oneLine(respBody))
	}
	sent := len(objects(prefix))
	if !r.Success || r.SuccessCount != sent || len(r.Errors) > 0 {
		var problems []string
		for _, e := range r.Errors {
			title := e.Title
			if title == "" {
				title = e.Meta.Title
			}
			problems = append(problems, fmt.Sprintf("%s %s (%s): %s", e.Type, e.ID, title, oneLine(e.Error)))
		}
		return nil, fmt.Errorf("kibana import: %d of %d objects imported; errors: %s", r.SuccessCount, sent,
			strings.Join(problems, "; "))
	}
	res := &ImportResult{Objects: sent, SuccessCount: r.SuccessCount, URL: base + sp}
	for _, d := range dashboards {
		id := d.id
		for _, ok := range r.SuccessResults {
			if ok.Type == "dashboard" && ok.ID == d.id && ok.DestinationID != "" {
				id = ok.DestinationID
			}
		}
		res.Dashboards = append(res.Dashboards, Link{d.title, base + sp + "/app/dashboards#/view/" + id})
	}
	return res, nil
}

func httpClient(o ImportOptions) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kibana import: CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kibana import: CA file %s holds no PEM certificate", o.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// oneLine shortens an answer body for an error message.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

package auditreceiver

import (
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
)

// apiResponse is the body of every answer of the JSON endpoints
// (/v1/audit/events, /api/v1/lineage[/batch]).
type apiResponse struct {
	// Accepted events were validated and delivered to the pipeline.
	Accepted int `json:"accepted"`
	// Rejected items are listed in Errors (invalid) or, for request-level
	// failures, all items of the request.
	Rejected int `json:"rejected"`
	// EventIDs of the accepted events, in request order (ids the receiver
	// derived for events sent without one included).
	EventIDs []string `json:"event_ids,omitempty"`
	// Errors explain each rejected item: index, event id, every problem.
	Errors []ingest.Rejection `json:"errors,omitempty"`
	// Error is set when the request as a whole failed.
	Error string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, body apiResponse) {
	b, err := json.Marshal(body)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"failed to encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (r *auditReceiver) handleAuditEvents(w http.ResponseWriter, req *http.Request) {
	r.serveJSON(w, req, pathAuditEvents, ingest.JSONEvents, ingest.FormatJSON)
}

func (r *auditReceiver) handleLineage(w http.ResponseWriter, req *http.Request) {
	r.serveJSON(w, req, pathLineage, ingest.OpenLineage, ingest.FormatOpenLineage)
}

var ndjsonTypes = map[string]bool{"application/x-ndjson": true, "application/ndjson": true, "application/jsonl": true,
	"application/x-jsonlines": true, "application/jsonlines": true}

// serveJSON is the flow of the JSON endpoints: read (limits, decompression),
// parse and validate every item, deliver the valid ones, answer with every
// rejected item explained.
func (r *auditReceiver) serveJSON(w http.ResponseWriter, req *http.Request, endpoint string,
	parse func([]byte, ingest.Options) (*ingest.Result, error), format string,
) {
	start := time.Now()
	ctx := req.Context()
	status := http.StatusOK
	defer func() { r.observeDuration(ctx, endpoint, strconv.Itoa(status), start) }()
	fail := func(code int, reason string, items int, msg string) {
		status = code
		r.refused(ctx, endpoint, format, reason, max(items, 1))
		writeJSON(w, code, apiResponse{Rejected: items, Error: msg})
	}

	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, reasonMalformed, 0, req.Method+" not allowed; POST the events")
		return
	}
	ndjson, msg := r.jsonContentType(req.Header.Get("Content-Type"))
	if msg != "" {
		fail(http.StatusUnsupportedMediaType, reasonMalformed, 0, msg)
		return
	}
	if ndjson && format == ingest.FormatJSON {
		format = "ndjson"
	}
	body, err := r.bodies.read(req)
	if err != nil {
		be := err.(*bodyError)
		fail(be.status, reasonFor(be.status), 0, be.msg)
		return
	}
	res, err := parse(body, r.options(ndjson, r.httpPrincipal(req)))
	if err != nil {
		re := err.(*ingest.RequestError)
		switch {
		case re.TooLarge:
			fail(http.StatusRequestEntityTooLarge, reasonLimit, 0, re.Msg)
		case re.Limit:
			fail(http.StatusBadRequest, reasonLimit, 0, re.Msg)
		default:
			fail(http.StatusBadRequest, reasonMalformed, 0, re.Msg)
		}
		return
	}
	out, why := r.deliver(ctx, r.obsHTTP, endpoint, format, res)
	resp := apiResponse{Accepted: res.Accepted, Rejected: len(res.Rejected), EventIDs: res.IDs, Errors: res.Rejected}
	switch out {
	case retryLater:
		// Nothing was accepted; the client must resend the whole request
		// (the ids are deterministic, so a resend creates no duplicates).
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(r.retryAfter()/time.Second)))
		resp = apiResponse{Rejected: res.Items, Errors: res.Rejected, Error: why}
	case failedPermanent:
		status = http.StatusInternalServerError
		resp = apiResponse{Rejected: res.Items, Errors: res.Rejected, Error: why}
	default:
		if len(res.Rejected) > 0 {
			status = http.StatusBadRequest
			resp.Error = strconv.Itoa(len(res.Rejected)) + " of " + strconv.Itoa(res.Items) + " items rejected (see errors); the other " +
				strconv.Itoa(res.Accepted) + " were accepted"
		}
	}
	writeJSON(w, status, resp)
}

// jsonContentType checks the Content-Type of a JSON endpoint request: JSON
// (application/json or application/*+json), an NDJSON type, or a type the
// configuration allows; the charset, if given, must be UTF-8. msg explains a
// refusal (415).
func (r *auditReceiver) jsonContentType(header string) (ndjson bool, msg string) {
	const accepted = "; send application/json (one event or an array) or application/x-ndjson"
	mediaType, params, err := mime.ParseMediaType(header)
	switch {
	case header == "" && slices.Contains(r.cfg.AllowedJSONContentTypes, ""):
		return false, ""
	case header == "":
		return false, "missing Content-Type" + accepted
	case err != nil:
		return false, "malformed Content-Type " + strconv.Quote(header) + accepted
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return false, "unsupported charset " + strconv.Quote(cs) + "; send UTF-8"
	}
	ndjson = ndjsonTypes[mediaType]
	if ndjson || mediaType == contentTypeJSON || strings.HasSuffix(mediaType, "+json") && strings.HasPrefix(mediaType, "application/") ||
		slices.Contains(r.cfg.AllowedJSONContentTypes, mediaType) {
		return ndjson, ""
	}
	return false, "unsupported Content-Type " + strconv.Quote(mediaType) + accepted
}

func reasonFor(status int) string {
	switch status {
	case http.StatusRequestEntityTooLarge:
		return reasonLimit
	case http.StatusRequestTimeout:
		return reasonTimeout
	}
	return reasonMalformed
}

// httpErrorHandler answers errors raised by confighttp before a handler runs
// (authentication, for example), in the format of the endpoint.
func (r *auditReceiver) httpErrorHandler(w http.ResponseWriter, req *http.Request, msg string, status int) {
	switch req.URL.Path {
	case pathOTLPLogs, pathOTLPTraces:
		writeOTLPStatus(w, req, status, msg, 0)
	default:
		writeJSON(w, status, apiResponse{Error: msg})
	}
}

package auditreceiver

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
)

const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
	// maxReasonsInMessage bounds the rejection reasons joined into an OTLP
	// partial-success or status message.
	maxReasonsInMessage = 20
)

// otlpSignal adapts one OTLP signal to the shared HTTP flow.
type otlpSignal struct {
	endpoint string
	// normalize decodes the body and turns it into canonical events; a
	// decoding failure is returned as errDecode.
	normalize func(body []byte, isJSON bool, opt ingest.Options) (*ingest.Result, error)
	// response encodes a success answer with the partial-success fields.
	response func(rejected int64, msg string, isJSON bool) ([]byte, error)
}

type errDecode struct{ err error }

func (e errDecode) Error() string { return "cannot decode the OTLP request: " + e.err.Error() }

var logsSignal = otlpSignal{
	endpoint: pathOTLPLogs,
	normalize: func(body []byte, isJSON bool, opt ingest.Options) (*ingest.Result, error) {
		if err := guard(body, isJSON, false); err != nil {
			return nil, err
		}
		req := plogotlp.NewExportRequest()
		if err := unmarshal(req.UnmarshalJSON, req.UnmarshalProto, body, isJSON); err != nil {
			return nil, errDecode{err}
		}
		return ingest.OTLPLogs(req.Logs(), opt)
	},
	response: func(rejected int64, msg string, isJSON bool) ([]byte, error) {
		resp := plogotlp.NewExportResponse()
		if rejected > 0 {
			resp.PartialSuccess().SetRejectedLogRecords(rejected)
			resp.PartialSuccess().SetErrorMessage(msg)
		}
		if isJSON {
			return resp.MarshalJSON()
		}
		return resp.MarshalProto()
	},
}

var tracesSignal = otlpSignal{
	endpoint: pathOTLPTraces,
	normalize: func(body []byte, isJSON bool, opt ingest.Options) (*ingest.Result, error) {
		if err := guard(body, isJSON, true); err != nil {
			return nil, err
		}
		req := ptraceotlp.NewExportRequest()
		if err := unmarshal(req.UnmarshalJSON, req.UnmarshalProto, body, isJSON); err != nil {
			return nil, errDecode{err}
		}
		return ingest.OTLPTraces(req.Traces(), opt)
	},
	response: func(rejected int64, msg string, isJSON bool) ([]byte, error) {
		resp := ptraceotlp.NewExportResponse()
		if rejected > 0 {
			resp.PartialSuccess().SetRejectedSpans(rejected)
			resp.PartialSuccess().SetErrorMessage(msg)
		}
		if isJSON {
			return resp.MarshalJSON()
		}
		return resp.MarshalProto()
	},
}

// guard runs the decoding guard of the body's encoding (see ingest.CheckOTLPProto).
func guard(body []byte, isJSON, traces bool) error {
	if isJSON {
		return ingest.CheckOTLPJSON(body)
	}
	return ingest.CheckOTLPProto(body, traces)
}

func unmarshal(fromJSON, fromProto func([]byte) error, body []byte, isJSON bool) error {
	if isJSON {
		return fromJSON(body)
	}
	return fromProto(body)
}

func (r *auditReceiver) handleOTLPLogs(w http.ResponseWriter, req *http.Request) {
	r.serveOTLP(w, req, logsSignal)
}

func (r *auditReceiver) handleOTLPTraces(w http.ResponseWriter, req *http.Request) {
	r.serveOTLP(w, req, tracesSignal)
}

// serveOTLP follows OTLP/HTTP: 200 with partial success when some items are
// invalid, 400 when none is valid, 503 + Retry-After on backpressure, errors
// as google.rpc.Status in the request's encoding.
func (r *auditReceiver) serveOTLP(w http.ResponseWriter, req *http.Request, sig otlpSignal) {
	start := time.Now()
	ctx := req.Context()
	code := http.StatusOK
	defer func() { r.observeDuration(ctx, sig.endpoint, strconv.Itoa(code), start) }()
	format := "otlp_proto"
	fail := func(c int, reason, msg string, items int) {
		code = c
		r.refused(ctx, sig.endpoint, format, reason, max(items, 1))
		retry := time.Duration(0)
		if c == http.StatusServiceUnavailable {
			retry = r.retryAfter()
		}
		writeOTLPStatus(w, req, c, msg, retry)
	}
	if req.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, reasonMalformed, req.Method+" not allowed, supported: [POST]", 0)
		return
	}
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	isJSON := mediaType == contentTypeJSON
	if isJSON {
		format = "otlp_json"
	} else if mediaType != contentTypeProto {
		fail(http.StatusUnsupportedMediaType, reasonMalformed, fmt.Sprintf("unsupported Content-Type %q, supported: [%s, %s]", mediaType, contentTypeJSON, contentTypeProto), 0)
		return
	}
	body, err := r.bodies.read(req)
	if err != nil {
		be := err.(*bodyError)
		fail(be.status, reasonFor(be.status), be.msg, 0)
		return
	}
	res, err := sig.normalize(body, isJSON, r.options(false, r.httpPrincipal(req)))
	if err != nil {
		var re *ingest.RequestError
		switch {
		case errors.As(err, &re) && re.TooLarge:
			fail(http.StatusRequestEntityTooLarge, reasonLimit, re.Msg, 0)
		case errors.As(err, &re) && re.Limit:
			fail(http.StatusBadRequest, reasonLimit, re.Msg, 0)
		default:
			fail(http.StatusBadRequest, reasonMalformed, err.Error(), 0)
		}
		return
	}
	rejected, msg, out, why := r.exportOTLP(ctx, sig.endpoint, format, res)
	switch {
	case out == retryLater:
		code = http.StatusServiceUnavailable
		writeOTLPStatus(w, req, code, why, r.retryAfter())
		return
	case out == failedPermanent:
		code = http.StatusInternalServerError
		writeOTLPStatus(w, req, code, why, 0)
		return
	case res.Accepted == 0 && rejected > 0:
		code = http.StatusBadRequest
		writeOTLPStatus(w, req, code, "no item is a valid audit event: "+msg, 0)
		return
	}
	b, err := sig.response(rejected, msg, isJSON)
	if err != nil {
		code = http.StatusInternalServerError
		writeOTLPStatus(w, req, code, "encoding the response: "+err.Error(), 0)
		return
	}
	contentType := contentTypeProto
	if isJSON {
		contentType = contentTypeJSON
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// exportOTLP delivers a normalized OTLP request; it is shared by HTTP and
// gRPC. rejected and msg are the partial-success fields.
func (r *auditReceiver) exportOTLP(ctx context.Context, endpoint, format string, res *ingest.Result) (rejected int64, msg string, out outcome, why string) {
	obs := r.obsHTTP
	if endpoint == endpointGRPCLogs || endpoint == endpointGRPCTraces {
		obs = r.obsGRPC
	}
	out, why = r.deliver(ctx, obs, endpoint, format, res)
	// A span whose derived events were partly accepted is listed with its
	// problems but counts as accepted.
	for _, rej := range res.Rejected {
		if !rej.Partial() {
			rejected++
		}
	}
	return rejected, res.Summary(maxReasonsInMessage), out, why
}

// writeOTLPStatus writes a google.rpc.Status as OTLP/HTTP requires, with
// RetryInfo and Retry-After when retry > 0.
func writeOTLPStatus(w http.ResponseWriter, req *http.Request, httpCode int, msg string, retry time.Duration) {
	st := status.New(grpcCode(httpCode), msg)
	if retry > 0 {
		if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
			st = withRetry
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
	}
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var b []byte
	var err error
	contentType := contentTypeJSON
	if mediaType == contentTypeProto {
		contentType = contentTypeProto
		b, err = proto.Marshal(st.Proto())
	} else {
		b, err = protojson.Marshal(st.Proto())
	}
	if err != nil {
		contentType, b = contentTypeJSON, []byte(`{"code":13,"message":"failed to encode the error"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(httpCode)
	_, _ = w.Write(b)
}

// grpcCode maps the receiver's HTTP answers to gRPC codes with the same
// retry semantics (OTLP spec, "Failures").
func grpcCode(httpCode int) codes.Code {
	switch httpCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusMethodNotAllowed, http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

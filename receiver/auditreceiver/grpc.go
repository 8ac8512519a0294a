package auditreceiver

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
)

// The OTLP logs and trace services are registered with service descriptions
// of their own rather than plogotlp/ptraceotlp.RegisterGRPCServer, so that
// the request bytes pass the decoding guard (ingest.CheckOTLPProto) before
// pdata decodes them: pdata's decoder has no nesting limit. The wire
// protocol is OTLP's; the request types below are decoded by the gRPC codec
// pdata registers for "proto", which calls their UnmarshalProto.

const (
	logsService   = "opentelemetry.proto.collector.logs.v1.LogsService"
	tracesService = "opentelemetry.proto.collector.trace.v1.TraceService"
)

// otlpServer is what the service descriptions dispatch to.
type otlpServer interface {
	export(ctx context.Context, req *guardedRequest) (any, error)
}

// guardedRequest is a request as the codec hands it over: decoded by
// decode once the guard passed, else with the guard's error.
type guardedRequest struct {
	traces bool
	logs   plogotlp.ExportRequest
	spans  ptraceotlp.ExportRequest
	err    error
}

// UnmarshalProto is called by pdata's gRPC codec. A guard refusal or a
// decoding error is kept for the handler, which answers InvalidArgument and
// counts it (a codec error would reach the client as Internal).
func (g *guardedRequest) UnmarshalProto(b []byte) error {
	if g.err = ingest.CheckOTLPProto(b, g.traces); g.err != nil {
		return nil
	}
	var err error
	if g.traces {
		g.spans = ptraceotlp.NewExportRequest()
		err = g.spans.UnmarshalProto(b)
	} else {
		g.logs = plogotlp.NewExportRequest()
		err = g.logs.UnmarshalProto(b)
	}
	if err != nil {
		g.err = errDecode{err}
	}
	return nil
}

// SizeProto and MarshalProto complete the codec's interface; requests are
// never encoded by the server.
func (g *guardedRequest) SizeProto() int            { return 0 }
func (g *guardedRequest) MarshalProto(_ []byte) int { return 0 }

// encodedResponse is an answer already encoded, for the codec to send.
type encodedResponse []byte

func (e encodedResponse) SizeProto() int { return len(e) }

// MarshalProto copies the answer into buf, sized SizeProto() by the codec.
func (e encodedResponse) MarshalProto(buf []byte) int { return copy(buf, e) }

func (e encodedResponse) UnmarshalProto([]byte) error {
	return errors.New("an encoded response is not decoded")
}

func exportHandler(service string, traces bool) grpc.MethodHandler {
	fullMethod := "/" + service + "/Export"
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) { //nolint:revive // gRPC's signature
		in := &guardedRequest{traces: traces}
		if err := dec(in); err != nil {
			return nil, err
		}
		handler := func(ctx context.Context, req any) (any, error) {
			return srv.(otlpServer).export(ctx, req.(*guardedRequest))
		}
		if interceptor == nil {
			return handler(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: fullMethod}, handler)
	}
}

func serviceDesc(service, metadata string, traces bool) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*otlpServer)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: exportHandler(service, traces)}},
		Streams:     []grpc.StreamDesc{},
		Metadata:    metadata,
	}
}

var (
	logsServiceDesc   = serviceDesc(logsService, "opentelemetry/proto/collector/logs/v1/logs_service.proto", false)
	tracesServiceDesc = serviceDesc(tracesService, "opentelemetry/proto/collector/trace/v1/trace_service.proto", true)
)

// grpcLogs serves the OTLP logs service.
type grpcLogs struct{ r *auditReceiver }

func (s *grpcLogs) export(ctx context.Context, req *guardedRequest) (any, error) {
	var res *ingest.Result
	err := req.err
	if err == nil {
		res, err = ingest.OTLPLogs(req.logs.Logs(), s.r.options(false, s.r.grpcPrincipal(ctx)))
	}
	rejected, msg, err := s.r.exportGRPC(ctx, endpointGRPCLogs, res, err)
	if err != nil {
		return nil, err
	}
	resp := plogotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(rejected)
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	b, err := resp.MarshalProto()
	return encodedResponse(b), err
}

// grpcTraces serves the OTLP trace service; spans become audit events.
type grpcTraces struct{ r *auditReceiver }

func (s *grpcTraces) export(ctx context.Context, req *guardedRequest) (any, error) {
	var res *ingest.Result
	err := req.err
	if err == nil {
		res, err = ingest.OTLPTraces(req.spans.Traces(), s.r.options(false, s.r.grpcPrincipal(ctx)))
	}
	rejected, msg, err := s.r.exportGRPC(ctx, endpointGRPCTraces, res, err)
	if err != nil {
		return nil, err
	}
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	b, err := resp.MarshalProto()
	return encodedResponse(b), err
}

// exportGRPC maps the shared OTLP flow to gRPC statuses: InvalidArgument for
// limits and all-invalid requests, Unavailable with RetryInfo on
// backpressure, Internal for permanent downstream failures.
func (r *auditReceiver) exportGRPC(ctx context.Context, endpoint string, res *ingest.Result, parseErr error) (int64, string, error) {
	start := time.Now()
	code := codes.OK
	defer func() { r.observeDuration(ctx, endpoint, code.String(), start) }()
	const format = "otlp_proto"
	if parseErr != nil {
		code = codes.InvalidArgument
		reason := reasonMalformed
		var re *ingest.RequestError
		if errors.As(parseErr, &re) && (re.TooLarge || re.Limit) {
			reason = reasonLimit
		}
		r.refused(ctx, endpoint, format, reason, 1)
		return 0, "", status.Error(code, parseErr.Error())
	}
	rejected, msg, out, why := r.exportOTLP(ctx, endpoint, format, res)
	switch {
	case out == retryLater:
		code = codes.Unavailable
		st := status.New(code, why)
		if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.retryAfter())}); err == nil {
			st = withRetry
		}
		return 0, "", st.Err()
	case out == failedPermanent:
		code = codes.Internal
		return 0, "", status.Error(code, why)
	case res.Accepted == 0 && rejected > 0:
		code = codes.InvalidArgument
		return 0, "", status.Error(code, "no item is a valid audit event: "+msg)
	}
	return rejected, msg, nil
}

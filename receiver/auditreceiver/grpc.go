package auditreceiver

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
)

// grpcLogs serves the OTLP logs service.
type grpcLogs struct {
	plogotlp.UnimplementedGRPCServer
	r *auditReceiver
}

func (s *grpcLogs) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	resp := plogotlp.NewExportResponse()
	res, err := ingest.OTLPLogs(req.Logs(), s.r.options(false, s.r.grpcPrincipal(ctx)))
	rejected, msg, err := s.r.exportGRPC(ctx, endpointGRPCLogs, res, err)
	if err == nil && rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(rejected)
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	return resp, err
}

// grpcTraces serves the OTLP trace service; spans become audit events.
type grpcTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	r *auditReceiver
}

func (s *grpcTraces) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	res, err := ingest.OTLPTraces(req.Traces(), s.r.options(false, s.r.grpcPrincipal(ctx)))
	rejected, msg, err := s.r.exportGRPC(ctx, endpointGRPCTraces, res, err)
	if err == nil && rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	return resp, err
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
		if errors.As(parseErr, &re) && re.TooLarge {
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

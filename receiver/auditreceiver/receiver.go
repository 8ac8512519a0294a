package auditreceiver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"

	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/ingest"
	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadata"
)

// HTTP routes, all served by the one HTTP server.
const (
	pathOTLPLogs     = "/v1/logs"
	pathOTLPTraces   = "/v1/traces"
	pathAuditEvents  = "/v1/audit/events"
	pathLineage      = "/api/v1/lineage"
	pathLineageBatch = "/api/v1/lineage/batch"

	endpointGRPCLogs   = "grpc.logs"
	endpointGRPCTraces = "grpc.traces"
)

type auditReceiver struct {
	cfg  *Config
	set  receiver.Settings
	next consumer.Logs

	tb      *metadata.TelemetryBuilder
	obsHTTP *receiverhelper.ObsReport
	obsGRPC *receiverhelper.ObsReport
	bodies  *bodyReader
	// pseudonymize is applied to every accepted event (nil: off).
	pseudonymize *ingest.Pseudonymizer

	// journal, when configured, takes accepted data; delivery from it into
	// next runs until Shutdown stops it.
	journal  journal.Journal
	delivery *journal.Delivery

	httpServer *http.Server
	grpcServer *grpc.Server
	// Bound addresses, for logs and tests with port 0.
	httpAddr, grpcAddr string
	wg                 sync.WaitGroup
}

var _ receiver.Logs = (*auditReceiver)(nil)

func newReceiver(cfg *Config, set receiver.Settings, next consumer.Logs) (*auditReceiver, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	r := &auditReceiver{cfg: cfg, set: set, next: next, tb: tb, bodies: newBodyReader(cfg), pseudonymize: cfg.pseudonymizer()}
	if r.obsHTTP, err = receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "http", ReceiverCreateSettings: set,
	}); err != nil {
		return nil, err
	}
	if r.obsGRPC, err = receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "grpc", ReceiverCreateSettings: set,
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// Start runs the configured servers (and delivery from the journal).
func (r *auditReceiver) Start(ctx context.Context, host component.Host) error {
	if r.pseudonymize != nil && strings.HasPrefix(string(r.cfg.Pseudonymize.Key), devKeyPrefix) {
		r.set.Logger.Warn("pseudonymize::key is the published development key: anyone can compute these pseudonyms. " +
			"Set your own secret key (the shipped configs read BATCHAUDIT_REDACTION_KEY) before real data arrives.")
	}
	if err := r.startJournal(host); err != nil {
		return err
	}
	if err := r.startGRPC(ctx, host); err != nil {
		return errors.Join(err, r.Shutdown(ctx))
	}
	if err := r.startHTTP(ctx, host); err != nil {
		return errors.Join(err, r.Shutdown(ctx))
	}
	return nil
}

func (r *auditReceiver) startJournal(host component.Host) error {
	if r.cfg.Journal == nil {
		return nil
	}
	j, err := journal.Lookup(host, *r.cfg.Journal)
	if err != nil {
		return err
	}
	r.journal = j
	r.delivery, err = journal.StartDelivery(host, j, r.next, r.set.Logger)
	return err
}

func (r *auditReceiver) startHTTP(ctx context.Context, host component.Host) error {
	hc := r.cfg.Protocols.HTTP.Get()
	if hc == nil {
		return nil
	}
	// Work on a copy: the receiver decompresses bodies itself so that it can
	// enforce limits.max_decompressed_bytes and answer 413, so confighttp's
	// decompression is switched off; its body cap defaults to max_body_bytes.
	sc := *hc
	sc.CompressionAlgorithms = []string{}
	if sc.MaxRequestBodySize <= 0 {
		sc.MaxRequestBodySize = r.cfg.Limits.MaxBodyBytes
	}
	mux := http.NewServeMux()
	mux.HandleFunc(pathOTLPLogs, r.handleOTLPLogs)
	mux.HandleFunc(pathOTLPTraces, r.handleOTLPTraces)
	mux.HandleFunc(pathAuditEvents, r.handleAuditEvents)
	mux.HandleFunc(pathLineage, r.handleLineage)
	mux.HandleFunc(pathLineageBatch, r.handleLineage)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusNotFound, apiResponse{Error: "no such endpoint " + req.URL.Path +
			"; use " + pathAuditEvents + ", " + pathLineage + ", " + pathLineageBatch + ", " + pathOTLPLogs + " or " + pathOTLPTraces})
	})

	srv, err := sc.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings, mux, confighttp.WithErrorHandler(r.httpErrorHandler))
	if err != nil {
		return err
	}
	ln, err := sc.ToListener(ctx)
	if err != nil {
		return err
	}
	r.httpServer, r.httpAddr = srv, ln.Addr().String()
	r.set.Logger.Info("Starting HTTP server", zap.String("endpoint", ln.Addr().String()))
	r.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	})
	return nil
}

func (r *auditReceiver) startGRPC(ctx context.Context, host component.Host) error {
	gc := r.cfg.Protocols.GRPC.Get()
	if gc == nil {
		return nil
	}
	sc := *gc
	if sc.MaxRecvMsgSizeMiB <= 0 {
		// gRPC applies the cap after decompression, so it is the
		// decompression-bomb guard on this transport.
		sc.MaxRecvMsgSizeMiB = int((r.cfg.Limits.MaxDecompressedBytes + 1<<20 - 1) >> 20)
	}
	srv, err := sc.ToServer(ctx, host.GetExtensions(), r.set.TelemetrySettings)
	if err != nil {
		return err
	}
	srv.RegisterService(logsServiceDesc, &grpcLogs{r: r})
	srv.RegisterService(tracesServiceDesc, &grpcTraces{r: r})
	var ln net.Listener
	if ln, err = sc.NetAddr.Listen(ctx); err != nil {
		return err
	}
	r.grpcServer, r.grpcAddr = srv, ln.Addr().String()
	r.set.Logger.Info("Starting GRPC server", zap.String("endpoint", ln.Addr().String()))
	r.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	})
	return nil
}

// Shutdown stops accepting requests and waits for the ones in flight, up to
// ctx's deadline; it is safe without Start and safe to call twice.
func (r *auditReceiver) Shutdown(ctx context.Context) error {
	var err error
	if r.httpServer != nil {
		err = r.httpServer.Shutdown(ctx)
	}
	if r.grpcServer != nil {
		stopped := make(chan struct{})
		go func() { r.grpcServer.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			r.grpcServer.Stop()
			<-stopped
			err = errors.Join(err, ctx.Err())
		}
	}
	r.wg.Wait()
	// Requests in flight are answered; delivery goes on until it reached
	// what they appended (bounded by the journal's drain_timeout), then
	// stops and checkpoints.
	r.delivery.Stop(ctx, r.set.Logger)
	r.delivery = nil
	r.tb.Shutdown()
	return err
}

// Package esstore is batchaudit's Elasticsearch backend of store.Store: audit
// events as ECS-shaped documents written with idempotent bulk "create"
// requests, run summaries kept current with optimistic concurrency, dead
// letters, and a gapless per-stream sequence. It talks to Elasticsearch
// through go-elasticsearch's low-level API with its own bulk logic (request
// building, per-item results, retries, splitting). docs/storage.md
// ("Elasticsearch") describes the documents, the guarantees and the limits.
package esstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/store"
)

// Store is the Elasticsearch store.Store.
type Store struct {
	cfg    Config
	client *elasticsearch.Client
	tr     *http.Transport
	logger *zap.Logger
	now    func() time.Time

	log    *store.Log
	mu     sync.Mutex
	closed bool

	readyMu sync.Mutex
	ready   bool

	lostMu  sync.Mutex
	written map[string]int64 // stream → highest sequence this process stored (guard.go)
	lost    map[string]int64 // stream → written when its loss was reported
}

var _ store.Store = (*Store)(nil)

// New connects to Elasticsearch, checks that it answers (GET
// _cluster/health) and, with install_templates, puts the index templates and
// creates the indices. Authentication and authorisation failures are
// permanent errors (consumererror.IsPermanent); an unreachable node is not.
func New(ctx context.Context, cfg Config, logger *zap.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, consumererror.NewPermanent(fmt.Errorf("esstore: invalid config: %w", err))
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	tlsCfg, err := cfg.TLS.LoadTLSConfig(ctx)
	if err != nil {
		return nil, consumererror.NewPermanent(fmt.Errorf("esstore: tls: %w", err))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = 8
	client, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: cfg.Endpoints,
		Username:  cfg.Username,
		Password:  string(cfg.Password),
		APIKey:    string(cfg.APIKey),
		Transport: tr,
		// Retries are ours: per item, with backoff, and never resending an
		// item Elasticsearch already answered.
		DisableRetry:        true,
		CompressRequestBody: cfg.Compression,
		// Level 1: most of gzip's size reduction on these JSON bodies for a
		// fraction of the default level's CPU (docs/performance.md).
		CompressRequestBodyLevel: gzip.BestSpeed,
		PoolCompressor:           cfg.Compression,
	})
	if err != nil {
		return nil, consumererror.NewPermanent(fmt.Errorf("esstore: client: %w", err))
	}
	s := &Store{cfg: cfg, client: client, tr: tr, logger: logger, now: time.Now, written: map[string]int64{}, lost: map[string]int64{}}
	s.log = store.NewLog(backend{s}, store.LogOptions{Window: cfg.DedupeWindow, Progress: store.LogProgress(logger)})
	if err := s.ensureReady(ctx); err != nil {
		if consumererror.IsPermanent(err) {
			s.close()
			return nil, err
		}
		if certificateError(err) {
			// A configuration error, not an outage: say so at start. (Later,
			// during writes, it stays retryable so that nothing is dropped.)
			s.close()
			return nil, consumererror.NewPermanent(fmt.Errorf("%w: Elasticsearch's TLS certificate is not trusted; "+
				"give the CA that signed it with tls.ca_file (CLI: --es-ca)", err))
		}
		// The collector must start (and queue durably) while Elasticsearch
		// is down; the check and the templates are retried on first use.
		logger.Warn("Elasticsearch is not reachable yet; will retry on first write", zap.Error(err))
		return s, nil
	}
	logger.Info("Elasticsearch audit store ready", zap.String("endpoints", cfg.endpointsForLog()),
		zap.String("index_prefix", cfg.IndexPrefix), zap.Bool("templates_installed", cfg.InstallTemplates))
	return s, nil
}

// ensureReady checks the cluster and installs the templates once; until it
// succeeds every Write and read tries again.
func (s *Store) ensureReady(ctx context.Context) error {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if s.ready {
		return nil
	}
	// GET / is not used: some nodes (and the test node) have no handler.
	status, body, err := s.once(ctx, "check cluster", esapi.ClusterHealthRequest{})
	if status == http.StatusForbidden {
		// Authenticated, and the node answers: least-privilege roles
		// (batchaudit_writer, batchaudit_reader) hold no cluster privilege.
		status, err = http.StatusOK, nil
	}
	if err == nil && status != http.StatusOK {
		err = statusError("check cluster", status, body)
	}
	if err != nil {
		return err
	}
	if s.cfg.InstallTemplates {
		if err := s.installTemplates(ctx); err != nil {
			return err
		}
	}
	s.ready = true
	return nil
}

// Close implements store.Store. Writes in flight finish; calling it twice is
// harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.close()
	return nil
}

func (s *Store) close() {
	_ = s.client.Close(context.Background())
	s.tr.CloseIdleConnections()
}

var errClosed = errors.New("esstore: store is closed")

// once sends one request with the per-request timeout and returns its
// status and body. Network errors come back as retryable errors, 401 and 403
// as permanent ones; every other status is the caller's to judge.
func (s *Store) once(ctx context.Context, what string, req esapi.Request) (int, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	res, err := req.Do(rctx, s.client)
	if err != nil {
		if errors.Is(err, elasticsearch.ErrClosed) {
			return 0, nil, errClosed
		}
		return 0, nil, fmt.Errorf("esstore: %s: %w", what, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("esstore: %s: reading the response: %w", what, err)
	}
	if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
		return res.StatusCode, body, consumererror.NewPermanent(statusError(what, res.StatusCode, body))
	}
	return res.StatusCode, body, nil
}

// perform is once with retries: network errors, 429 and 5xx are retried
// with backoff until retry.max_attempts or ctx ends. The last error is
// returned, never a retryable status.
func (s *Store) perform(ctx context.Context, what string, newReq func() esapi.Request) (int, []byte, error) {
	for attempt := 1; ; attempt++ {
		status, body, err := s.once(ctx, what, newReq())
		switch {
		case err != nil && (consumererror.IsPermanent(err) || errors.Is(err, errClosed)):
			return status, body, err
		case err == nil && !retryableStatus(status):
			return status, body, nil
		case err == nil:
			err = statusError(what, status, body)
		}
		if werr := s.wait(ctx, attempt); werr != nil {
			return 0, nil, fmt.Errorf("%w (gave up after %d attempts: %v)", err, attempt, werr)
		}
		s.logger.Debug("retrying Elasticsearch request", zap.String("request", what), zap.Int("attempt", attempt), zap.Error(err))
	}
}

func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// wait sleeps before retry number attempt+1: exponential backoff with
// jitter (±50 %), capped at retry.max_interval. It fails when the attempts
// are used up or ctx ends first.
func (s *Store) wait(ctx context.Context, attempt int) error {
	r := s.cfg.Retry
	if r.MaxAttempts > 0 && attempt >= r.MaxAttempts {
		return fmt.Errorf("retry.max_attempts (%d) reached", r.MaxAttempts)
	}
	d := r.InitialInterval
	for i := 1; i < attempt && d < r.MaxInterval; i++ {
		d *= 2
	}
	d = min(d, r.MaxInterval)
	d = time.Duration(float64(d) * (0.5 + rand.Float64()))
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("the deadline is before the next retry: %w", context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// certificateError reports whether err is a failed check of the server's
// TLS certificate (unknown CA, wrong host name, expired).
func certificateError(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// statusError names the request, the status and Elasticsearch's error.
func statusError(what string, status int, body []byte) error {
	if t, r := errorOf(body); t != "" {
		return fmt.Errorf("esstore: %s: HTTP %d: %s: %s", what, status, t, r)
	}
	return fmt.Errorf("esstore: %s: HTTP %d: %s", what, status, truncate(string(bytes.TrimSpace(body)), 300))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// refresh makes completed writes visible to searches: reads call it first
// (see docs/storage.md for why reads refresh rather than writes waiting).
func (s *Store) refresh(ctx context.Context, indices ...string) error {
	status, body, err := s.perform(ctx, "refresh", func() esapi.Request {
		return esapi.IndicesRefreshRequest{Index: indices, IgnoreUnavailable: ptr(true), AllowNoIndices: ptr(true)}
	})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return statusError("refresh "+strings.Join(indices, ","), status, body)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Command ordersjob is a small but real batch job instrumented with jobaudit:
// it reads an orders CSV, drops cancelled and invalid orders, converts amounts
// to EUR, writes the clean orders to a CSV file, and sends its audit trail over
// OTLP/HTTP to the batchaudit collector.
//
//	go run ./examples/ordersjob -in examples/ordersjob/testdata/orders_day1.csv -out /tmp/orders_clean.csv
//
// The collector endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT (default
// http://localhost:4318).
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/batchaudit/batchaudit/jobaudit"
)

// eurRates are fixed for reproducible runs.
var eurRates = map[string]float64{"EUR": 1, "USD": 0.92, "GBP": 1.17, "JPY": 0.0061}

func main() {
	in := flag.String("in", "examples/ordersjob/testdata/orders_day1.csv", "input orders CSV")
	out := flag.String("out", "orders_clean.csv", "output CSV")
	batchID := flag.String("batch-id", "", "run id (default: a new UUIDv7)")
	actor := flag.String("actor", "svc-orders-etl", "who runs the job")
	job := flag.String("job", defaultJob, "job name; another job than the default reads and writes its own datasets (namespace file://ordersjob/<job>)")
	flag.Parse()

	ctx := context.Background()
	shutdown, auditor, err := setupTelemetry(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ordersjob:", err)
		os.Exit(1)
	}
	summary, runErr := run(ctx, auditor, *in, *out, *batchID, *actor, *job)
	// Flushing is part of the job: an audit trail that did not arrive is a failure.
	if err := shutdown(context.Background()); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("delivering audit events: %w", err))
	}
	fmt.Println(summary)
	if runErr != nil {
		fmt.Fprintln(os.Stderr, "ordersjob:", runErr)
		os.Exit(1)
	}
}

func setupTelemetry(ctx context.Context) (func(context.Context) error, *jobaudit.Auditor, error) {
	exp, err := otlploghttp.New(ctx) // honours OTEL_EXPORTER_OTLP_* variables
	if err != nil {
		return nil, nil, err
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("ordersjob"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res),
		sdklog.WithProcessor(jobaudit.NewProcessor(exp, 512, time.Second)))
	// Spans give trace ids for correlation; export them to your tracing
	// backend if you have one (the audit events themselves travel as logs).
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res))
	shutdown := func(ctx context.Context) error {
		return errors.Join(tp.Shutdown(ctx), lp.Shutdown(ctx))
	}
	return shutdown, jobaudit.New(lp, tp), nil
}

type summary struct {
	batchID                         string
	read, written, skipped, errored int64
	out                             string
}

func (s summary) String() string {
	return fmt.Sprintf("ordersjob: batch %s: read %d, written %d, skipped %d, errored %d -> %s",
		s.batchID, s.read, s.written, s.skipped, s.errored, s.out)
}

// defaultJob is the example job's name.
const defaultJob = "orders-clean"

func run(ctx context.Context, a *jobaudit.Auditor, inPath, outPath, batchID, actor, job string) (summary, error) {
	opts := []jobaudit.RunOption{
		jobaudit.WithNamespace("finance"),
		jobaudit.WithActor(actor, "", "service"),
		jobaudit.WithCompliance([]string{"SOX"}, []string{"financial"}),
	}
	if batchID != "" {
		opts = append(opts, jobaudit.WithBatchID(batchID))
	}
	ctx, r := a.StartRun(ctx, job, opts...)
	s := summary{batchID: r.BatchID(), out: outPath}
	// Stable dataset names, so change detection compares runs that read
	// and write different files (one per day); a dataset is written by one
	// job only (docs/cdc.md).
	namespace := "file://ordersjob"
	if job != defaultJob {
		namespace += "/" + job
	}
	err := process(ctx, r, inPath, outPath, namespace)
	r.End(ctx, err)
	c := r.Counts()
	s.read, s.written, s.skipped, s.errored = c.Read, c.Written, c.Skipped, c.Errored
	return s, err
}

func process(ctx context.Context, r *jobaudit.Run, inPath, outPath, namespace string) error {
	f, err := os.Open(inPath)
	if err != nil {
		return err
	}
	defer f.Close()
	of, err := os.Create(outPath)
	if err != nil {
		return err
	}
	defer of.Close()

	src := jobaudit.Dataset{Namespace: namespace, Name: "orders"}
	dst := jobaudit.Dataset{Namespace: namespace, Name: "orders_clean"}

	cr := csv.NewReader(f)
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	cw := csv.NewWriter(of)
	if err := cw.Write([]string{"order_id", "customer", "country", "amount_eur", "currency", "updated_at"}); err != nil {
		return err
	}
	line := 1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			r.Error(ctx, fmt.Sprintf("line-%d", line), err)
			continue
		}
		row := map[string]any{}
		for i, h := range header {
			row[h] = rec[i]
		}
		id := rec[0]
		r.Read(ctx, src, id, row)

		if row["status"] == "cancelled" {
			r.Skip(ctx, id, "order cancelled")
			continue
		}
		amount, err := strconv.ParseFloat(row["amount"].(string), 64)
		if err != nil {
			r.Error(ctx, id, fmt.Errorf("amount %q is not a number", row["amount"]))
			continue
		}
		parsed := with(row, "amount", amount)
		r.Transform(ctx, id, jobaudit.Step{Name: "parse_amount", Sequence: 1, Type: "DIRECT", Subtype: "TRANSFORMATION"}, row, parsed)
		r.Validation(ctx, "amount_positive", amount > 0, "amount", ">0", amount)
		if amount <= 0 {
			r.Skip(ctx, id, "amount must be positive")
			continue
		}
		rate, ok := eurRates[row["currency"].(string)]
		if !ok {
			r.Error(ctx, id, fmt.Errorf("no EUR rate for currency %q", row["currency"]))
			continue
		}
		clean := map[string]any{
			"order_id":   id,
			"customer":   row["customer"],
			"country":    strings.ToUpper(row["country"].(string)),
			"amount_eur": math.Round(amount*rate*100) / 100,
			"currency":   row["currency"],
			"updated_at": row["updated_at"],
		}
		r.Transform(ctx, id, jobaudit.Step{Name: "convert_to_eur", Sequence: 2, Type: "DIRECT", Subtype: "TRANSFORMATION",
			Params: map[string]any{"rate": rate}}, parsed, clean)
		if err := cw.Write([]string{id, clean["customer"].(string), clean["country"].(string),
			strconv.FormatFloat(clean["amount_eur"].(float64), 'f', 2, 64), clean["currency"].(string), clean["updated_at"].(string)}); err != nil {
			return err
		}
		r.Write(ctx, dst, id, clean, jobaudit.WithKeyFields("order_id"))
		if line%100 == 0 {
			r.Checkpoint(ctx, fmt.Sprintf("cp-%d", line), fmt.Sprintf("%s:%d", filepath.Base(inPath), line), int64(line-1))
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	r.Checkpoint(ctx, "final", fmt.Sprintf("%s:%d", filepath.Base(inPath), line), int64(line-1))
	return of.Sync()
}

func with(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m))
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

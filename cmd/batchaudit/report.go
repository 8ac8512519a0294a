package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
)

// envRedactionKey holds cdcprocessor's redaction_key for GDPR subject
// lookups when --redaction-key-file is not given.
const envRedactionKey = "BATCHAUDIT_REDACTION_KEY"

func reportCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	from := fs.String("from", "", "period start, included: YYYY-MM-DD (UTC) or RFC 3339 (required)")
	to := fs.String("to", "", "period end, excluded: YYYY-MM-DD (UTC) or RFC 3339 (required)")
	var f reports.Filters
	fs.StringVar(&f.Job, "job", "", "only runs of this job")
	fs.StringVar(&f.Dataset, "dataset", "", "only runs that read or wrote this dataset (name or namespace/name); lineage: the dataset to trace")
	fs.StringVar(&f.Actor, "actor", "", "only runs of this actor (user.id)")
	fs.StringVar(&f.Record, "record", "", "lineage: the record id to trace")
	subject := fs.String("subject", "", "gdpr: the data subject's identifier (matched by its keyed pseudonym, never recorded)")
	formats := fs.String("format", "html,json,csv", "formats, comma separated: html, json, csv, pdf (json is always written)")
	out := fs.String("out", "./batchaudit-reports", "directory; the report goes into OUT/<report id>/")
	key := fs.String("key", os.Getenv("BATCHAUDIT_REPORT_KEY"), "signer key file (batchaudit keygen); default $BATCHAUDIT_REPORT_KEY")
	catalog := fs.String("catalog", "", "dataset catalog YAML for gdpr and hipaa (docs/reports.md)")
	redactionKeyFile := fs.String("redaction-key-file", "", "file holding cdcprocessor's redaction_key (default $"+envRedactionKey+")")
	maxRows := fs.Int("max-rows", 0, "record-level tables list at most this many rows (0: 10000); totals stay complete")
	var cpKeys stringList
	fs.Var(&cpKeys, "checkpoint-key", "verifier key of the collector's signed checkpoints (text or file), to verify the attestation's checkpoints; repeatable")
	origin := fs.String("origin-prefix", reports.DefaultOriginPrefix, "checkpoint origin prefix (the exporter's checkpoints::origin_prefix)")
	schedule := fs.String("schedule", "", "take the attestation's previous report from this schedule's reports (to reproduce a scheduled report); default: any recorded report of the same kind and filters")
	record := fs.Bool("record-in-index", false, "record the report in the store's report index (needs write access), so the next report proves its checkpoints consistent with this one's")
	return func(ctx context.Context, c *cli, args []string) error {
		req := reports.Request{Kind: args[0], Filters: f, Subject: *subject, Schedule: *schedule}
		var err error
		if req.From, err = parseDate(*from, "--from"); err != nil {
			return err
		}
		if req.To, err = parseDate(*to, "--to"); err != nil {
			return err
		}
		if err := req.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *key == "" {
			return fmt.Errorf("%w: --key SIGNER_KEY_FILE is required: reports are signed (create one with batchaudit keygen)", errUsage)
		}
		if *record && *schedule != "" {
			return fmt.Errorf("%w: --record-in-index records ad-hoc reports; a schedule's reports are recorded by the reports extension (drop --schedule)", errUsage)
		}
		keys, err := signing.LoadVerifiers(cpKeys)
		if err != nil {
			return fmt.Errorf("%w: --checkpoint-key: %v", errUsage, err)
		}
		signer, err := signing.LoadSigner(*key)
		if err != nil {
			return err
		}
		if s, ok := c.store.(*sqlitestore.Store); ok {
			if err := s.ForReports(ctx); err != nil {
				return err
			}
		}
		src, ok := c.store.(reports.Source)
		if !ok {
			return fmt.Errorf("this store cannot aggregate")
		}
		g := &reports.Generator{Source: src, StoreName: c.storeName, MaxRows: *maxRows, CheckpointKeys: keys, OriginPrefix: *origin}
		if *catalog != "" {
			if g.Catalog, err = reports.LoadCatalog(*catalog); err != nil {
				return err
			}
		}
		if g.RedactionKey, err = redactionKey(*redactionKeyFile); err != nil {
			return err
		}
		start := time.Now()
		progress := func(step string) {
			fmt.Fprintf(c.errOut, "batchaudit report %s: %s (%s)\n", req.Kind, step, time.Since(start).Round(time.Millisecond))
		}
		g.Progress = progress
		r, err := g.Generate(ctx, req)
		if err != nil {
			return err
		}
		progress("writing " + *formats)
		w, err := reports.Write(ctx, r, *out, splitList(*formats), signer, reports.WriteOptions{Progress: progress})
		if err != nil {
			return err
		}
		recorded := ""
		if *record {
			created, err := src.RecordReport(ctx, reports.NewRecord(r, w, ""))
			if err != nil {
				return fmt.Errorf("the report was written to %s but not recorded: %w", w.Dir, err)
			}
			recorded = "recorded in the report index"
			if !created {
				recorded = "already recorded in the report index (the first record is kept)"
			}
		}
		progress("done")
		a := r.Attestation
		if c.format == formatJSON {
			return c.writeJSON(map[string]any{"dir": w.Dir, "files": w.Files, "report_id": r.Envelope.ID, "content_sha256": w.ContentSHA256,
				"attestation": a.Status, "checkpoint_signatures": a.Verification.Status, "index": recorded})
		}
		fmt.Fprintf(c.out, "%s report %s\n  content sha256 %s\n  attestation %s, checkpoint signatures %s\n  %s\n", req.Kind, r.Envelope.ID,
			w.ContentSHA256, a.Status, a.Verification.Status, w.Dir)
		for _, name := range w.Files {
			fmt.Fprintf(c.out, "  %s/%s\n", w.Dir, name)
		}
		if recorded != "" {
			fmt.Fprintf(c.out, "  %s\n", recorded)
		}
		return nil
	}
}

func verifyReportCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	key := fs.String("key", os.Getenv("BATCHAUDIT_REPORT_VERIFIER"), "verifier key (text, or a file holding it); default $BATCHAUDIT_REPORT_VERIFIER")
	var cpKeys stringList
	fs.Var(&cpKeys, "checkpoint-key", "verifier key of the collector's signed checkpoints (text or file): check the attestation's signatures; repeatable")
	origin := fs.String("origin-prefix", reports.DefaultOriginPrefix, "checkpoint origin prefix (the exporter's checkpoints::origin_prefix)")
	return func(ctx context.Context, c *cli, args []string) error {
		if *key == "" {
			return fmt.Errorf("%w: --key VERIFIER_KEY is required (what batchaudit keygen printed)", errUsage)
		}
		v, err := signing.LoadVerifier(*key)
		if err != nil {
			return err
		}
		keys, err := signing.LoadVerifiers(cpKeys)
		if err != nil {
			return fmt.Errorf("%w: --checkpoint-key: %v", errUsage, err)
		}
		res, err := reports.Verify(args[0], v)
		if err != nil {
			fmt.Fprintf(c.out, "FAILED: %v\n", err)
			return errVerify
		}
		// The manifest holds: report.json is the signed one.
		b, err := os.ReadFile(filepath.Join(args[0], reports.JSONFile))
		if err != nil {
			return err
		}
		var r reports.Report
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(c.out, "FAILED: report.json: %v\n", err)
			return errVerify
		}
		att, err := reports.VerifyAttestation(&r.Attestation, keys, *origin)
		if err != nil {
			fmt.Fprintf(c.out, "FAILED: %s report %s is signed by %s, but its integrity attestation fails: %v\n", res.Kind, res.ReportID, res.Signer, err)
			return errVerify
		}
		if c.format == formatJSON {
			return c.writeJSON(map[string]any{"report_id": res.ReportID, "kind": res.Kind, "content_sha256": res.ContentSHA256,
				"signer": res.Signer, "files": res.Files, "attestation": att.Status, "checkpoint_signatures": att.Signatures, "streams": att.Streams})
		}
		fmt.Fprintf(c.out, "OK: %s report %s signed by %s\n  content sha256 %s\n  %d files match the signed manifest: %s\n",
			res.Kind, res.ReportID, res.Signer, res.ContentSHA256, len(res.Files), strings.Join(res.Files, ", "))
		switch {
		case att.Signatures == reports.VerificationVerified:
			fmt.Fprintf(c.out, "  attestation %s; checkpoint signatures verified (%s)\n", att.Status, keyNames(cpKeys))
		case len(keys) > 0:
			fmt.Fprintf(c.out, "  attestation %s; no checkpoint to check\n", att.Status)
		default:
			fmt.Fprintf(c.out, "  attestation %s; checkpoint signatures NOT checked (give --checkpoint-key)\n", att.Status)
		}
		for _, line := range att.Streams {
			fmt.Fprintf(c.out, "  %s\n", line)
		}
		return nil
	}
}

func keygenCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	name := fs.String("name", "", "key name, e.g. reports.example.com (required)")
	out := fs.String("out", "", "file for the signer key, created with mode 0600 (required; never overwritten)")
	return func(ctx context.Context, c *cli, _ []string) error {
		if *name == "" || *out == "" {
			return fmt.Errorf("%w: --name NAME and --out FILE are required", errUsage)
		}
		skey, vkey, err := signing.GenerateKey(*name)
		if err != nil {
			return err
		}
		if err := signing.WriteSignerKey(*out, skey); err != nil {
			return err
		}
		fmt.Fprintln(c.out, vkey)
		fmt.Fprintf(c.errOut, "batchaudit keygen: signer key written to %s (mode 0600, keep it secret); the line above is the verifier key to hand out\n", *out)
		return nil
	}
}

// parseDate reads YYYY-MM-DD (midnight UTC) or RFC 3339.
func parseDate(s, flagName string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: %s is required", errUsage, flagName)
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s %q: want YYYY-MM-DD or RFC 3339 (2026-07-01T00:00:00Z)", errUsage, flagName, s)
	}
	return t.UTC(), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func redactionKey(file string) ([]byte, error) {
	if file == "" {
		return []byte(os.Getenv(envRedactionKey)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("redaction key: %w", err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}

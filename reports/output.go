package reports

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
)

// Formats a report can be written in. JSON is always written: it is the
// form the signature and the content hash are about.
const (
	FormatJSON = "json"
	FormatHTML = "html"
	FormatCSV  = "csv"
	FormatPDF  = "pdf"
)

// Formats lists every format.
var Formats = []string{FormatJSON, FormatHTML, FormatCSV, FormatPDF}

// File names inside a report directory.
const (
	JSONFile      = "report.json"
	HTMLFile      = "report.html"
	PDFFile       = "report.pdf"
	CSVDir        = "csv"
	SignatureFile = "report.sig"
	manifestHead  = "batchaudit-report v1"
)

// Written is what Write produced.
type Written struct {
	Dir           string
	Files         []string // relative to Dir, sorted; the signature file last
	ContentSHA256 string
}

// WriteOptions tune Write.
type WriteOptions struct {
	// Chromium is the browser binary for PDF; empty finds chromium on PATH.
	Chromium string
	Progress func(step string)
}

// Write writes the report into dir/<report id>/ in the formats asked for,
// plus its signed manifest (report.sig). It writes into a temporary
// directory and renames it, so a report directory is always complete; an
// existing directory of the same report is replaced.
func Write(ctx context.Context, r *Report, dir string, formats []string, signer note.Signer, opts WriteOptions) (*Written, error) {
	if signer == nil {
		return nil, errors.New("reports: a signer key is required: reports are always signed")
	}
	for _, f := range formats {
		if !slices.Contains(Formats, f) {
			return nil, fmt.Errorf("reports: unknown format %q (one of %s)", f, strings.Join(Formats, ", "))
		}
	}
	progress := func(s string) {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}
	final := filepath.Join(dir, r.Envelope.ID)
	tmp := final + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	defer os.RemoveAll(tmp)
	files := map[string][]byte{}
	js, err := r.encode()
	if err != nil {
		return nil, fmt.Errorf("reports: json: %w", err)
	}
	files[JSONFile] = js
	if slices.Contains(formats, FormatHTML) || slices.Contains(formats, FormatPDF) {
		h, err := HTML(r)
		if err != nil {
			return nil, err
		}
		files[HTMLFile] = h
	}
	if slices.Contains(formats, FormatCSV) {
		for _, s := range r.Sections {
			for i := range s.Tables {
				c, err := CSV(&s.Tables[i])
				if err != nil {
					return nil, fmt.Errorf("reports: csv %s: %w", s.Tables[i].ID, err)
				}
				files[CSVDir+"/"+s.Tables[i].ID+".csv"] = c
			}
		}
	}
	for name, b := range files {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
	}
	if slices.Contains(formats, FormatPDF) {
		progress("rendering the PDF with headless Chromium")
		pdf, err := PDF(ctx, filepath.Join(tmp, HTMLFile), opts.Chromium)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(tmp, PDFFile), pdf, 0o644); err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		files[PDFFile] = pdf
		if !slices.Contains(formats, FormatHTML) {
			delete(files, HTMLFile)
			_ = os.Remove(filepath.Join(tmp, HTMLFile))
		}
	}
	names := sortedKeys(files)
	var m strings.Builder
	fmt.Fprintf(&m, "%s\nid %s\nkind %s\nperiod %s %s\ncontent-sha256 %s\n", manifestHead, r.Envelope.ID, r.Envelope.Kind,
		fmtTime(r.Envelope.From), fmtTime(r.Envelope.To), r.Envelope.ContentSHA256)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&m, "file %s %s\n", hex.EncodeToString(sum[:]), n)
	}
	sig, err := signing.Sign(m.String(), signer)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, SignatureFile), sig, 0o644); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	if err := os.RemoveAll(final); err != nil {
		return nil, fmt.Errorf("reports: replace %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	return &Written{Dir: final, Files: append(names, SignatureFile), ContentSHA256: r.Envelope.ContentSHA256}, nil
}

// NewRecord is the report index's record of a written report: id
// "<schedule>/<report id>" in a schedule, the report id otherwise, and the
// checkpoints its attestation used, which the next report of the series
// proves its own consistent with.
func NewRecord(r *Report, w *Written, schedule string) store.ReportRecord {
	id := r.Envelope.ID
	if schedule != "" {
		id = schedule + "/" + id
	}
	rec := store.ReportRecord{ID: id, Kind: r.Envelope.Kind, Schedule: schedule, From: r.Envelope.From, To: r.Envelope.To,
		Filters: r.Envelope.Filters.String(), GeneratedAt: r.Envelope.GeneratedAt, ContentSHA256: w.ContentSHA256,
		Location: w.Dir, Files: w.Files}
	for _, s := range r.Attestation.Streams {
		if s.Checkpoint != nil && s.Status == AttestationCovered {
			rec.Checkpoints = append(rec.Checkpoints, store.ReportCheckpoint{Stream: s.Stream, Size: s.Checkpoint.TreeSize, Note: s.Checkpoint.Note})
		}
	}
	return rec
}

// Verification is what Verify checked.
type Verification struct {
	ReportID      string
	Kind          string
	ContentSHA256 string
	Signer        string
	Files         []string
}

// Verify checks a report directory: the manifest's signature by one of the
// verifier keys, the SHA-256 of every file it lists, that no other file is
// there, and that report.json's content hash is the one the manifest and
// the report state. Any difference is an error naming it.
func Verify(dir string, verifiers ...note.Verifier) (*Verification, error) {
	msg, err := os.ReadFile(filepath.Join(dir, SignatureFile))
	if err != nil {
		return nil, fmt.Errorf("reports: no signed manifest: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("reports: the manifest's signature does not verify: %w", err)
	}
	v := &Verification{Signer: n.Sigs[0].Name}
	sc := bufio.NewScanner(strings.NewReader(n.Text))
	listed := map[string]string{}
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			if line != manifestHead {
				return nil, fmt.Errorf("reports: not a report manifest (first line %q)", line)
			}
			first = false
			continue
		}
		k, rest, _ := strings.Cut(line, " ")
		switch k {
		case "id":
			v.ReportID = rest
		case "kind":
			v.Kind = rest
		case "content-sha256":
			v.ContentSHA256 = rest
		case "file":
			sum, name, ok := strings.Cut(rest, " ")
			if !ok || name == "" || strings.Contains(name, "..") || filepath.IsAbs(name) {
				return nil, fmt.Errorf("reports: bad manifest line %q", line)
			}
			listed[name] = sum
		}
	}
	if _, ok := listed[JSONFile]; !ok {
		return nil, errors.New("reports: the manifest lists no report.json")
	}
	var problems []error
	for _, name := range sortedKeys(listed) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: listed in the manifest but cannot be read: %w", name, err))
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != listed[name] {
			problems = append(problems, fmt.Errorf("%s: SHA-256 is %s, the signed manifest says %s: the file was altered", name, got, listed[name]))
		}
		v.Files = append(v.Files, name)
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if _, ok := listed[rel]; !ok && rel != SignatureFile {
			problems = append(problems, fmt.Errorf("%s: not covered by the signed manifest", rel))
		}
		return nil
	})
	js, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err == nil {
		ch, err := ContentHash(js)
		var env struct {
			Envelope struct {
				ID            string `json:"report_id"`
				ContentSHA256 string `json:"content_sha256"`
			} `json:"envelope"`
		}
		_ = json.NewDecoder(bytes.NewReader(js)).Decode(&env)
		switch {
		case err != nil:
			problems = append(problems, err)
		case ch != v.ContentSHA256:
			problems = append(problems, fmt.Errorf("report.json: its content hashes to %s, the signed manifest says %s", ch, v.ContentSHA256))
		case env.Envelope.ContentSHA256 != v.ContentSHA256 || env.Envelope.ID != v.ReportID:
			problems = append(problems, errors.New("report.json: its envelope does not match the signed manifest"))
		}
	}
	if len(problems) > 0 {
		return v, fmt.Errorf("reports: verification failed: %w", errors.Join(problems...))
	}
	return v, nil
}

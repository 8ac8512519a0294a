package reports

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// requireChromium returns Debian's chromium, failing the test with the
// install command when it is missing (BATCHAUDIT_SKIP_BROWSER=1 skips, loudly).
func requireChromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("BATCHAUDIT_SKIP_BROWSER") == "1" {
		t.Skip("SKIPPING the browser test because BATCHAUDIT_SKIP_BROWSER=1: it did NOT run")
	}
	p, err := FindChromium()
	if err != nil {
		t.Fatalf("%v (`.ci/run` and `make test` install it with apt-get; set BATCHAUDIT_SKIP_BROWSER=1 only to skip on purpose)", err)
	}
	return p
}

// artifactDir is where browser tests keep screenshots and PDFs for people
// to look at (harness.ArtifactsDir).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir, err := harness.ArtifactsDir()
	require.NoError(t, err)
	dir = filepath.Join(dir, "reports")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

func testSigner(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := signing.GenerateKey("reports.test")
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	v, err := signing.LoadVerifier(vkey)
	require.NoError(t, err)
	return s, v
}

// pageResult is what the browser saw.
type pageResult struct {
	Metrics []string `json:"metrics"`
	Tables  []string `json:"tables"`
	Charts  int      `json:"charts"`
	Bars    int      `json:"bars"`
	Loaded  int      `json:"resources"`
	Title   string   `json:"title"`
	// Attestation is the text of the attestation's status badges and its
	// per-stream rows.
	Attestation []string `json:"attestation"`
}

// TestHTMLInBrowser loads every report kind from disk in headless Chromium
// with the network switched off, checks that it renders without console
// messages or requests, that the numbers on the page are the report's, and
// keeps a screenshot of each.
func TestHTMLInBrowser(t *testing.T) {
	bin := requireChromium(t)
	out := artifactDir(t)
	signer, verifier := testSigner(t)
	g := newGenerator(sqliteFixture(t), "sqlite:test")
	dir := t.TempDir()

	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900)}
	for _, a := range ChromiumArgs(profile)[4:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if name == "user-data-dir" {
			continue
		}
		if value == "" {
			opts = append(opts, chromedp.Flag(name, true))
		} else {
			opts = append(opts, chromedp.Flag(name, value))
		}
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()

	for _, req := range fixtureRequests() {
		t.Run(filepath.Base(goldenName(req)), func(t *testing.T) {
			r, err := g.Generate(context.Background(), req)
			require.NoError(t, err)
			w, err := Write(context.Background(), r, dir, []string{FormatHTML, FormatJSON}, signer, WriteOptions{})
			require.NoError(t, err)
			_, err = Verify(w.Dir, verifier)
			require.NoError(t, err)

			var mu sync.Mutex
			var messages, requests []string
			ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
				mu.Lock()
				defer mu.Unlock()
				switch e := ev.(type) {
				case *runtime.EventConsoleAPICalled:
					messages = append(messages, fmt.Sprintf("console.%s", e.Type))
				case *runtime.EventExceptionThrown:
					messages = append(messages, "exception: "+e.ExceptionDetails.Text)
				case *cdplog.EventEntryAdded:
					messages = append(messages, fmt.Sprintf("%s %s: %s", e.Entry.Level, e.Entry.Source, e.Entry.Text))
				case *network.EventRequestWillBeSent:
					requests = append(requests, e.Request.URL)
				}
			}))
			defer cancel()
			url := "file://" + filepath.Join(w.Dir, HTMLFile)
			var res pageResult
			var shot []byte
			err = chromedp.Do(ctx,
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					for _, step := range []func() error{
						func() error { _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); return err },
						func() error {
							_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
							return err
						},
						func() error { _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); return err },
					} {
						if err := step(); err != nil {
							return err
						}
					}
					return nil
				}),
				chromedp.Navigate(url),
				chromedp.WaitReady("#section-queries"),
				chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					var err error
					res, err = chromedp.Evaluate[pageResult](`({
						metrics: [...document.querySelectorAll('.metric')].map(m => m.id.replace('metric-','') + '=' + m.querySelector('.v').textContent),
						tables: [...document.querySelectorAll('table[data-table]')].map(t => t.dataset.table + '=' + t.tBodies[0].rows.length),
						charts: document.querySelectorAll('figure svg').length,
						bars: document.querySelectorAll('figure svg rect title').length,
						resources: performance.getEntriesByType('resource').length,
						title: document.title,
						attestation: [...document.querySelectorAll('#section-attestation > p > .status, #attestation-streams tbody tr')].map(e => e.innerText.replace(/\s+/g, ' ').trim()),
					})`)(ctx, tg)
					if err != nil {
						return err
					}
					shot, err = chromedp.FullScreenshot(100)(ctx, tg)
					return err
				}),
			)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(out, r.Envelope.Kind+"-"+strings.NewReplacer(" ", "_", "=", "-").Replace(req.Filters.String())+".png"), shot, 0o644))
			assert.Greater(t, len(shot), 10000, "a real screenshot")
			mu.Lock()
			assert.Empty(t, messages, "no console messages, errors or exceptions")
			assert.Equal(t, []string{url}, requests, "the page loads nothing but itself")
			mu.Unlock()
			assert.Zero(t, res.Loaded)
			assert.Contains(t, res.Title, r.Envelope.ID)
			var wantMetrics []string
			for _, m := range r.Summary {
				wantMetrics = append(wantMetrics, m.ID+"="+strconv.FormatInt(m.Value, 10))
			}
			assert.Equal(t, wantMetrics, res.Metrics, "the page shows the report's numbers")
			var wantTables []string
			charts := 0
			for _, s := range r.Sections {
				for _, tb := range s.Tables {
					if len(tb.Rows) > 0 {
						wantTables = append(wantTables, fmt.Sprintf("%s=%d", tb.ID, len(tb.Rows)))
					}
				}
				for _, c := range s.Charts {
					if tb := r.Table(c.Table); tb != nil && len(tb.Rows) > 0 {
						charts++
					}
				}
			}
			assert.Equal(t, wantTables, res.Tables)
			assert.Equal(t, charts, res.Charts)
			a := r.Attestation
			wantAtt := []string{strings.ToUpper(strings.ReplaceAll(a.Status, "_", " ")), "SIGNATURES " + strings.ToUpper(a.Verification.Status)}
			for _, st := range a.Streams {
				wantAtt = append(wantAtt, fmt.Sprintf("%s 1..%d %s %d %s %v %d hashes", st.Stream, st.Entries, st.Status,
					st.Checkpoint.TreeSize, st.Checkpoint.RootHash, prevSize(st.Previous), len(st.ConsistencyProof)))
			}
			assert.Equal(t, wantAtt, res.Attestation, "the attestation's status, signatures and streams")
		})
	}
}

// TestPDF prints the SOX and reconciliation reports with headless Chromium
// and reads them back with poppler: the summary page, then a page per
// section (the SOX data-transfer section takes two), then the queries; the
// text holds the report id, its content hash and every section title.
func TestPDF(t *testing.T) {
	bin := requireChromium(t)
	for _, tool := range []string{"pdfinfo", "pdftotext"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install Debian's poppler-utils (apt-get install poppler-utils)", tool)
		}
	}
	signer, verifier := testSigner(t)
	g := newGenerator(sqliteFixture(t), "sqlite:test")
	// The first text line of every page.
	pages := map[string][]string{
		KindSOX: {titles[KindSOX], "Integrity attestation", "Computer operations", "Data-transfer completeness", "Findings per day by type (1)",
			"Change management", "Access", "Exceptions", "Review and sign-off", "Queries"},
		KindReconciliation: {titles[KindReconciliation], "Integrity attestation", "Counts per run", "Counts per dataset", "Findings", "Unended runs",
			"Dead letters and integrity alarms", "Review and sign-off", "Queries"},
	}
	for _, req := range fixtureRequests()[:2] {
		r, err := g.Generate(context.Background(), req)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		w, err := Write(ctx, r, t.TempDir(), []string{FormatPDF}, signer, WriteOptions{Chromium: bin})
		cancel()
		require.NoError(t, err)
		assert.Equal(t, []string{JSONFile, PDFFile, SignatureFile}, w.Files, "pdf alone: the HTML it came from is not kept")
		_, err = Verify(w.Dir, verifier)
		require.NoError(t, err)
		pdf := filepath.Join(w.Dir, PDFFile)
		b, err := os.ReadFile(pdf)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(artifactDir(t), r.Envelope.Kind+".pdf"), b, 0o644))
		info, err := exec.Command("pdfinfo", pdf).Output()
		require.NoError(t, err)
		want := pages[r.Envelope.Kind]
		assert.Regexp(t, fmt.Sprintf(`(?m)^Pages:\s+%d$`, len(want)), string(info))
		var first []string
		for p := 1; p <= len(want); p++ {
			text, err := exec.Command("pdftotext", "-f", fmt.Sprint(p), "-l", fmt.Sprint(p), pdf, "-").Output()
			require.NoError(t, err)
			line := ""
			for _, l := range strings.Split(string(text), "\n") {
				if strings.TrimSpace(l) != "" {
					line = strings.TrimSpace(l)
					break
				}
			}
			first = append(first, line)
		}
		assert.Equal(t, want, first, "a page per section")
		text, err := exec.Command("pdftotext", "-layout", pdf, "-").Output()
		require.NoError(t, err)
		for _, want := range []string{r.Envelope.ID, r.Envelope.ContentSHA256, "Integrity attestation", "COVERED",
			"Completeness of the data", r.Attestation.Streams[0].Checkpoint.RootHash, "— storetest.checkpoints "} {
			assert.Contains(t, string(text), want)
		}
	}
}

func prevSize(c *Checkpoint) any {
	if c == nil {
		return "–"
	}
	return c.TreeSize
}

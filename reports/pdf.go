package reports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// FindChromium returns the path of Debian's chromium (or chromium-browser)
// on PATH.
func FindChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("reports: PDF needs a headless Chromium: install Debian's chromium (apt-get install chromium)")
}

// ChromiumArgs are the flags every headless run uses: no sandbox (root in
// containers), no GPU, and nothing that reaches the network on its own
// (background updates, sync, first-run pages), with a fresh profile.
func ChromiumArgs(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + profile}
}

// PDF prints an HTML file to PDF with headless Chromium (the report's
// print CSS sets A4 landscape and a page per section).
func PDF(ctx context.Context, htmlPath, chromium string) ([]byte, error) {
	if chromium == "" {
		var err error
		if chromium, err = FindChromium(); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "batchaudit-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	out := filepath.Join(profile, "report.pdf")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := append(ChromiumArgs(profile), "--no-pdf-header-footer", "--print-to-pdf="+out, "file://"+abs)
	cmd := exec.CommandContext(ctx, chromium, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("reports: chromium --print-to-pdf: %w: %s", err, lastLines(stderr.String(), 5))
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("%PDF-")) {
		return nil, fmt.Errorf("reports: chromium wrote no PDF: %v %s", err, lastLines(stderr.String(), 5))
	}
	return b, nil
}

func lastLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

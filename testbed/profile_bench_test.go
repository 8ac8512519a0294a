package testbed

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/batchaudit/batchaudit/testbed/harness"
)

// merkleWork names the functions that exist only for tamper evidence
// (issue 13's "Merkle appends + checkpoints ≤ 5% of the collector's CPU"):
// appending leaves and storing tiles on every write, and signing,
// proving consistency and publishing checkpoints. Everything the trail
// did before the Merkle log (document hashes, numbering) is outside.
var merkleWork = regexp.MustCompile(`/store\.\(\*write\)\.grow$|/auditexporter\.\(\*checkpointer\)\.(sign|stored)$`)

// withPprof adds the pprof extension on a free port to a testbed config.
func withPprof(t testing.TB, cfg string) (string, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	cfg = strings.Replace(cfg, "extensions:\n", "extensions:\n  pprof:\n    endpoint: "+addr+"\n", 1)
	cfg = strings.Replace(cfg, "  extensions: [health_check, journal]", "  extensions: [health_check, journal, pprof]", 1)
	if !strings.Contains(cfg, "journal, pprof]") {
		t.Fatal("withPprof: the config's service extensions line changed")
	}
	return cfg, addr
}

// cpuProfile starts a CPU profile of the collector over the next d; the
// returned function waits for it.
func cpuProfile(t testing.TB, addr string, d time.Duration) func() *profile.Profile {
	type result struct {
		p   *profile.Profile
		err error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		p, err := profile.Parse(resp.Body)
		ch <- result{p, err}
	}()
	return func() *profile.Profile {
		r := <-ch
		if r.err != nil {
			t.Fatalf("CPU profile: %v", r.err)
		}
		return r.p
	}
}

// writeProfile keeps a profile for go tool pprof.
func writeProfile(t testing.TB, p *profile.Profile, path string) {
	f, err := os.Create(path)
	if err == nil {
		err = p.Write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("write the CPU profile: %v", err)
	}
}

// shareOf is the fraction of the profile's CPU samples with a frame
// matching re (each sample counted once, however many frames match).
func shareOf(p *profile.Profile, re *regexp.Regexp) (share float64, total time.Duration) {
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	var all, hit int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		all += v
	frames:
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && re.MatchString(l.Function.Name) {
					hit += v
					break frames
				}
			}
		}
	}
	if all == 0 {
		return 0, 0
	}
	return float64(hit) / float64(all), time.Duration(all)
}

func TestShareOf(t *testing.T) {
	fn := func(name string) *profile.Location {
		return &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: name}}}}
	}
	grow := fn("github.com/batchaudit/batchaudit/store.(*write).grow")
	sign := fn("github.com/batchaudit/batchaudit/exporter/auditexporter.(*checkpointer).sign")
	sqlite := fn("modernc.org/sqlite.(*conn).exec")
	write := fn("github.com/batchaudit/batchaudit/store.(*Log).Write")
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{sqlite, grow, write}, Value: []int64{1, 30}},
			{Location: []*profile.Location{sqlite, write}, Value: []int64{1, 50}},
			{Location: []*profile.Location{sign, sign}, Value: []int64{1, 20}}, // recursion counts once
			{Location: []*profile.Location{fn("github.com/batchaudit/batchaudit/store.(*write).growth")}, Value: []int64{1, 100}},
		},
	}
	share, total := shareOf(p, merkleWork)
	if total != 200 || share != 0.25 {
		t.Fatalf("share %v of %v, want 0.25 of 200ns", share, total)
	}
}

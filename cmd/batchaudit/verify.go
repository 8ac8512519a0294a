package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/verify"
)

func verifyCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	only := fs.String("stream", "", "verify only this stream (default: every stream)")
	var keys stringList
	fs.Var(&keys, "key", "verifier key (text or file) that signs checkpoints (repeatable: old and new key during a rotation)")
	checkpoints := fs.String("checkpoints", "", "the checkpoint file the collector publishes outside the store (JSON lines)")
	origin := fs.String("origin-prefix", verify.DefaultOriginPrefix, "checkpoint origin prefix (origin = prefix + stream)")
	return func(ctx context.Context, c *cli, _ []string) error {
		if c.format == formatCSV {
			return fmt.Errorf("%w: verify prints text or json, not csv", errUsage)
		}
		if os.Getenv("GOGC") == "" {
			// verify allocates per entry and keeps little: collecting less
			// often cut its CPU by about a fifth for ≈100 MiB more peak
			// memory on a 200,000-event trail (docs/integrity.md).
			debug.SetGCPercent(400)
		}
		opts := verify.Options{OriginPrefix: *origin}
		if *only != "" {
			opts.Streams = []string{*only}
		}
		if len(keys) > 0 {
			vs, err := loadVerifiers(keys)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			opts.Verifiers = vs
		}
		if *checkpoints != "" {
			if len(keys) == 0 {
				return fmt.Errorf("%w: --checkpoints needs --key to check the checkpoints' signatures", errUsage)
			}
			ext, err := readCheckpointFile(*checkpoints)
			if err != nil {
				return err
			}
			opts.External = ext
		}
		opts.Progress = func(stream string, n int64) {
			fmt.Fprintf(c.errOut, "verify: stream %s: %d entries checked\n", stream, n)
		}
		rep, err := verify.Verify(ctx, c.store, opts)
		if err != nil {
			return err
		}
		mappings, err := checkMappings(ctx, c.store, rep)
		if err != nil {
			return err
		}
		if c.format == formatJSON {
			out := struct {
				OK bool `json:"ok"`
				*verify.Report
				*mappingReport
			}{rep.OK(), rep, mappings}
			if out.Problems == nil {
				out.Problems = []verify.Problem{}
			}
			if err := c.writeJSON(out); err != nil {
				return err
			}
		} else {
			if mappings != nil {
				fmt.Fprintln(c.out, "index mappings: checked against batchaudit's")
				for _, n := range mappings.Notes {
					fmt.Fprintln(c.out, "NOTE mapping:", n)
				}
			}
			printVerify(c, rep, len(keys) > 0)
		}
		if !rep.OK() {
			return errVerify
		}
		return nil
	}
}

func printVerify(c *cli, rep *verify.Report, signed bool) {
	for _, s := range rep.Streams {
		fmt.Fprintf(c.out, "stream %s: %d entries (%d events, %d dead letters, %d gaps), root %s",
			s.Stream, s.Entries, s.Events, s.DeadLetters, s.Gaps, s.Root)
		if signed {
			fmt.Fprintf(c.out, "; %d signed checkpoints, the latest covers %d", s.Checkpoints, s.Covered)
		}
		fmt.Fprintln(c.out)
		if p := s.Pruned; p != nil {
			fmt.Fprintf(c.out, "stream %s: entries 1..%d pruned by retention (batchaudit.retention.prune at #%d, event %s, cutoff %s); their leaves in the tiles give the signed roots\n",
				s.Stream, p.Through, p.Sequence, p.EventID, p.Cutoff)
		}
	}
	fmt.Fprintf(c.out, "runs: %d summaries compared with their events\n", rep.Runs)
	numbered := "every stream is numbered 1..N without gaps"
	for _, s := range rep.Streams {
		if s.Pruned != nil {
			numbered = "every stream is numbered 1..N without gaps (after the pruned prefixes its retention events record)"
		}
	}
	failing := 0
	for _, p := range rep.Problems {
		tag := "BROKEN"
		if !p.Failing() {
			tag = "NOTE"
		} else {
			failing++
		}
		where := p.Stream
		if p.Sequence > 0 {
			where = fmt.Sprintf("%s #%d", p.Stream, p.Sequence)
		}
		if where != "" {
			where += ": "
		}
		fmt.Fprintf(c.out, "%s %s: %s%s\n", tag, p.Kind, where, p.Detail)
	}
	switch {
	case failing > 0:
		fmt.Fprintf(c.out, "FAILED: %d problem(s); the trail has been altered or is incomplete.\n", failing)
	case signed:
		fmt.Fprintf(c.out, "OK: every entry matches its hash, %s and gives the roots its signed checkpoints sign, search columns match the documents and run summaries match their events.\n", numbered)
	default:
		fmt.Fprintf(c.out, "OK: every entry matches its hash, %s, search columns match the documents and run summaries match their events.\n", numbered)
		fmt.Fprintln(c.out, "Checkpoints were not checked: give --key (and --checkpoints) to detect rewritten or truncated streams.")
	}
}

// mappingChecker is a store whose index mappings can drift from batchaudit's:
// in Elasticsearch 8 even a create_doc writer can still update a mapping
// (docs/elasticsearch.md), e.g. add a runtime field that shadows a stored
// one in searches.
type mappingChecker interface {
	CheckMappings(ctx context.Context) (problems, notes []string, err error)
}

type mappingReport struct {
	MappingsChecked bool     `json:"mappings_checked"`
	Notes           []string `json:"mapping_notes,omitempty"`
}

// checkMappings adds a failing "mapping" problem to rep for every way the
// store's index mappings differ from batchaudit's; nil when the store has
// no mappings (SQLite).
func checkMappings(ctx context.Context, s any, rep *verify.Report) (*mappingReport, error) {
	mc, ok := s.(mappingChecker)
	if !ok {
		return nil, nil
	}
	problems, notes, err := mc.CheckMappings(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		rep.Problems = append(rep.Problems, verify.Problem{Kind: "mapping", Detail: p})
	}
	return &mappingReport{MappingsChecked: true, Notes: notes}, nil
}

// loadVerifiers reads verifier keys given as text or as files holding them.
func loadVerifiers(keys []string) (note.Verifiers, error) {
	vs, err := signing.LoadVerifiers(keys)
	if err != nil {
		return nil, err
	}
	return note.VerifierList(vs...), nil
}

// readCheckpointFile reads the collector's published checkpoints: one JSON
// object per line (stream, note, final).
func readCheckpointFile(path string) ([]verify.External, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []verify.External
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var x verify.External
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, x)
	}
	return out, sc.Err()
}

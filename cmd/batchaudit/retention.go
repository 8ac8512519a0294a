package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/retention"
	"github.com/batchaudit/batchaudit/store/verify"
)

// retentionCommand removes the entries older than the retention period,
// keeping the tiles and checkpoints (docs/integrity.md, "Retention").
func retentionCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	olderThan := fs.String("older-than", "", "remove entries older than this, e.g. 400d (required)")
	minimum := fs.String("min-retention", retention.Days(retention.DefaultMinimum),
		"refuse a period shorter than this (default: 12 months, PCI DSS 10.5.1; HIPAA needs 2190d, SOX evidence 2557d)")
	only := fs.String("stream", "", "only this stream (default: every stream)")
	dryRun := fs.Bool("dry-run", false, "show what would be removed; change nothing")
	var keys, verifiers stringList
	fs.Var(&keys, "key", "checkpoint signer key file, the collector's checkpoints::key_files (required; repeatable): checkpoints are checked with it and the retention event is signed with it")
	fs.Var(&verifiers, "verifier", "a further verifier key (text or file) of older checkpoints, e.g. a key rotated out (repeatable)")
	checkpoints := fs.String("checkpoints", "", "the checkpoint file the collector publishes (JSON lines): checked, and the new checkpoint is appended to it")
	origin := fs.String("origin-prefix", verify.DefaultOriginPrefix, "checkpoint origin prefix (origin = prefix + stream)")
	stopped := fs.Bool("collector-stopped", false, "state that no collector writes the stream now (Elasticsearch, without a final published checkpoint)")
	actor := fs.String("actor", currentUser(), "who runs the prune, recorded as user.id of the retention event")
	return func(ctx context.Context, c *cli, _ []string) error {
		if c.format == formatCSV {
			return fmt.Errorf("%w: retention prints text or json, not csv", errUsage)
		}
		opts := retention.Options{DryRun: *dryRun, OriginPrefix: *origin, WriterStopped: *stopped, Actor: *actor}
		var err error
		if opts.OlderThan, err = parseDays("--older-than", *olderThan); err != nil {
			return err
		}
		if opts.Minimum, err = parseDays("--min-retention", *minimum); err != nil {
			return err
		}
		if len(keys) == 0 {
			return fmt.Errorf("%w: --key SIGNER_KEY_FILE is required: only entries a signed checkpoint covers are removed, and the retention event is signed with it", errUsage)
		}
		for _, k := range keys {
			s, err := signing.LoadSigner(k)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			v, err := signing.VerifierOf(k)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			opts.Signers, opts.Verifiers = append(opts.Signers, s), append(opts.Verifiers, v)
		}
		for _, k := range verifiers {
			v, err := signing.LoadVerifier(k)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			opts.Verifiers = append(opts.Verifiers, v)
		}
		if *checkpoints != "" {
			if opts.External, err = readCheckpointFile(*checkpoints); err != nil && !os.IsNotExist(err) {
				return err
			}
			path := *checkpoints
			opts.Publish = func(stream string, size int64, signed []byte, final bool) error {
				return merkle.AppendPublished(path, merkle.Published{Stream: stream, Size: size, Note: string(signed), Final: final})
			}
		}
		opts.Principal = c.principal
		s, ok := c.store.(retention.Store)
		if !ok {
			return fmt.Errorf("this store does not support retention")
		}
		streams := []string{*only}
		if *only == "" {
			if streams, err = s.Streams(ctx); err != nil {
				return err
			}
		}
		var results []*retention.Result
		for _, stream := range streams {
			res, err := retention.Prune(ctx, s, stream, opts)
			if res != nil {
				results = append(results, res)
				if c.format == formatText {
					printRetention(c, res, opts)
				}
			}
			if err != nil {
				return fmt.Errorf("stream %s: %w", stream, err)
			}
		}
		if c.format == formatJSON {
			if results == nil {
				results = []*retention.Result{}
			}
			return c.writeJSON(results)
		}
		return nil
	}
}

func printRetention(c *cli, r *retention.Result, opts retention.Options) {
	cutoff := r.Cutoff.Format(time.RFC3339)
	if r.From == 0 {
		fmt.Fprintf(c.out, "stream %s: nothing to remove older than %s (before %s): %s\n", r.Stream, retention.Days(opts.OlderThan), cutoff, r.Stop)
		return
	}
	verb := "removed"
	if r.DryRun {
		verb = "would remove"
	}
	fmt.Fprintf(c.out, "stream %s: %s entries #%d..#%d (%d entries, %d run summaries) older than %s (before %s); the signed checkpoint of size %d covers them\n",
		r.Stream, verb, r.From, r.Through, r.Entries, len(r.Runs), retention.Days(opts.OlderThan), cutoff, r.Checkpoint)
	if r.Stop != "" {
		fmt.Fprintf(c.out, "  kept from #%d: %s\n", r.Through+1, r.Stop)
	}
	if len(r.Runs) > 0 {
		fmt.Fprintf(c.out, "  runs: %s\n", strings.Join(r.Runs, " "))
	}
	if r.EventID != "" {
		fmt.Fprintf(c.out, "  recorded as %s event %s at #%d, signed in the checkpoint of size %d\n", "batchaudit.retention.prune", r.EventID, r.EventSequence, r.Signed)
	}
	if !r.DryRun && r.Removed != r.Entries {
		fmt.Fprintf(c.out, "  NOTE: %d entries were removed, %d were planned\n", r.Removed, r.Entries)
	}
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

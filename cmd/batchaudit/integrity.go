package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/verify"
)

// checkpointCommand prints the latest kept checkpoint of a stream.
func checkpointCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	stream := fs.String("stream", "", "the stream (default: the only one)")
	return func(ctx context.Context, c *cli, _ []string) error {
		name, err := oneStream(ctx, c.store, *stream)
		if err != nil {
			return err
		}
		cps, err := c.store.Checkpoints(ctx, name)
		if err != nil {
			return err
		}
		if len(cps) == 0 {
			return fmt.Errorf("stream %s has no checkpoint yet (is the exporter's checkpoints::key_files set?)", name)
		}
		last := cps[len(cps)-1]
		if c.format == formatJSON {
			return c.writeJSON(last)
		}
		fmt.Fprint(c.out, last.Note)
		return nil
	}
}

// proveCommand writes a proof bundle for one event.
func proveCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	since := fs.String("since", "", "an older checkpoint (a file holding the signed note) to add a consistency proof from")
	out := fs.String("out", "", "write the bundle to this file (default: standard output)")
	return func(ctx context.Context, c *cli, args []string) error {
		e, err := c.store.EntryOf(ctx, args[0])
		if err != nil {
			return err
		}
		if e == nil {
			return fmt.Errorf("no stored event has id %s", args[0])
		}
		cps, err := c.store.Checkpoints(ctx, e.Stream)
		if err != nil {
			return err
		}
		if len(cps) == 0 || cps[len(cps)-1].Size < e.Sequence {
			return fmt.Errorf("event %s (stream %s, sequence %d) is not covered by a checkpoint yet; try again after the next one", args[0], e.Stream, e.Sequence)
		}
		latest := cps[len(cps)-1]
		cp, err := merkle.ParseBody(merkle.Text(latest.Note))
		if err != nil {
			return err
		}
		head, err := c.store.Head(ctx, e.Stream)
		if err != nil {
			return err
		}
		r := tlog.TileHashReader(cp.Tree(), head.Tiles)
		incl, err := tlog.ProveRecord(cp.Size, e.Sequence-1, r)
		if err != nil {
			return fmt.Errorf("inclusion proof: %w", err)
		}
		b := merkle.Bundle{Format: merkle.BundleFormat, Stream: e.Stream, Sequence: e.Sequence, Kind: e.Kind,
			Document: string(e.Document), Hash: e.Hash, Checkpoint: latest.Note, Inclusion: merkle.Hashes(incl)}
		if *since != "" {
			old, err := os.ReadFile(*since)
			if err != nil {
				return err
			}
			oc, err := merkle.ParseBody(merkle.Text(string(old)))
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			p, err := tlog.ProveTree(cp.Size, oc.Size, r)
			if err != nil {
				return fmt.Errorf("consistency proof: %w", err)
			}
			b.Consistency = &merkle.ConsistencyProof{From: string(old), Proof: merkle.Hashes(p)}
		}
		data, err := json.MarshalIndent(b, "", "  ")
		if err != nil {
			return err
		}
		data = append(data, '\n')
		if *out == "" {
			_, err = c.out.Write(data)
			return err
		}
		return os.WriteFile(*out, data, 0o644)
	}
}

// verifyProofCommand checks a bundle offline.
func verifyProofCommand(fs *flag.FlagSet) func(context.Context, *cli, []string) error {
	var keys stringList
	fs.Var(&keys, "key", "verifier key (text or file); repeatable")
	origin := fs.String("origin-prefix", verify.DefaultOriginPrefix, "checkpoint origin prefix (origin = prefix + stream)")
	return func(_ context.Context, c *cli, args []string) error {
		if len(keys) == 0 {
			return fmt.Errorf("%w: --key VERIFIER is required", errUsage)
		}
		vs, err := loadVerifiers(keys)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		data, err := os.ReadFile(args[0])
		if err != nil {
			return err
		}
		var b merkle.Bundle
		if err := json.Unmarshal(data, &b); err != nil {
			fmt.Fprintf(c.out, "FAILED: the bundle is not valid JSON: %v\n", err)
			return errVerify
		}
		v, err := merkle.VerifyBundle(&b, vs, *origin)
		if err != nil {
			fmt.Fprintf(c.out, "FAILED: %v\n", err)
			return errVerify
		}
		fmt.Fprintf(c.out, "OK: the %s is entry %d of stream %s, included in the checkpoint of size %d signed by %s",
			b.Kind, b.Sequence, b.Stream, v.Checkpoint.Size, keyNames(keys))
		if v.From != nil {
			fmt.Fprintf(c.out, ", which extends the checkpoint of size %d", v.From.Size)
		}
		fmt.Fprintln(c.out, ".")
		return nil
	}
}

func keyNames(keys []string) string {
	var names []string
	for _, k := range keys {
		if v, err := signing.LoadVerifier(k); err == nil {
			names = append(names, v.Name())
		}
	}
	return strings.Join(names, " or ")
}

// oneStream returns stream, or the store's only stream.
func oneStream(ctx context.Context, s store.Store, stream string) (string, error) {
	if stream != "" {
		return stream, nil
	}
	streams, err := s.Streams(ctx)
	if err != nil {
		return "", err
	}
	if len(streams) != 1 {
		return "", fmt.Errorf("%w: the trail has %d streams %v: name one with --stream", errUsage, len(streams), streams)
	}
	return streams[0], nil
}

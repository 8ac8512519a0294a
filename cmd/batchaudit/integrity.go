package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

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
		var old []byte
		if *since != "" {
			var err error
			if old, err = os.ReadFile(*since); err != nil {
				return err
			}
		}
		b, err := store.Prove(ctx, c.store, args[0], old)
		if err != nil {
			return err
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

// Command batchaudit reads an audit trail: runs, their events, a record's
// history, dead letters, and an integrity check of hashes and sequences; and
// it installs the trail's Kibana objects.
//
//	batchaudit runs [--job J] [--status S] [--actor A] [--children BATCH] [--latest] [PERIOD]
//	batchaudit events [--batch ID] [--name N] [--dataset D] [--actor A] [--record R]
//	                  [--change C] [--finding F] [--lineage L] [PERIOD]
//	batchaudit history RECORD_ID [--kibana-url URL]
//	batchaudit deadletters [PERIOD]
//	batchaudit verify [--stream S] [--key VERIFIER]... [--checkpoints FILE]
//	batchaudit checkpoint [--stream S]
//	batchaudit prove EVENT_ID [--since CHECKPOINT_FILE] [--out BUNDLE]
//	batchaudit verify-proof BUNDLE --key VERIFIER
//	batchaudit retention --older-than 400d --key SIGNER [--stream S] [--dry-run] [--min-retention D]
//	batchaudit kibana import --kibana URL | kibana export --out FILE
//	batchaudit report KIND --from DATE --to DATE [filters] [--format html,json,csv,pdf] --out DIR --key FILE
//	                  [--checkpoint-key VERIFIER]... [--schedule NAME] [--record-in-index]
//	batchaudit verify-report --key VERIFIER [--checkpoint-key VERIFIER]... DIR
//	batchaudit keygen --name NAME --out FILE
//	batchaudit es setup --es URL
//
// PERIOD is --since 7d or --from T [--to T]. Every command takes --db PATH
// (default ./batchaudit-data/audit.db) or --es URL [--es-prefix P] with
// --es-user/--es-password or --es-api-key and --es-ca, and --output
// text|json|csv. Results are streamed from the store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // an error, or verify found a break
	exitUsage = 2
)

const usage = `batchaudit reads the audit trail written by otelcol-batchaudit.

Usage:
  batchaudit runs [--job J] [--status S] [--actor A] [--children BATCH] [--latest] [PERIOD] [--limit N]
                 [--context | --changes]
  batchaudit events [--batch ID] [--name N]... [--dataset D] [--actor A] [--record R]
                    [--change C] [--finding F] [--lineage L] [PERIOD] [--limit N]
  batchaudit history RECORD_ID
  batchaudit deadletters [PERIOD]
  batchaudit verify [--stream S] [--key VERIFIER]... [--checkpoints FILE] [--origin-prefix P]

Tamper evidence (docs/integrity.md):
  batchaudit checkpoint [--stream S]                  the latest signed checkpoint of a stream
  batchaudit prove EVENT_ID [--since CHECKPOINT_FILE] [--out BUNDLE]
                                                      a proof bundle: the event, its inclusion proof, the checkpoint
  batchaudit verify-proof BUNDLE --key VERIFIER       check a bundle offline (no store needed)

Retention (docs/integrity.md "Retention"; Elasticsearch: the admin role's credentials):
  batchaudit retention --older-than 400d --key SIGNER_KEY_FILE [--stream S] [--dry-run] [--min-retention 366d]
                       [--checkpoints FILE] [--verifier KEY]... [--collector-stopped] [--actor NAME]
      removes the entries older than the period that a signed checkpoint covers, whole runs only; keeps
      the Merkle tiles and every checkpoint; records the prune as a batchaudit.retention.prune event and
      signs a checkpoint over it. Refuses a period inside --min-retention (default 12 months, PCI DSS).

Compliance reports (docs/reports.md):
  batchaudit report KIND --from DATE --to DATE [--job J] [--dataset D] [--actor A] [--record R] [--subject S]
                     [--format html,json,csv,pdf] [--out DIR] --key SIGNER_KEY_FILE [--catalog FILE]
                     [--checkpoint-key CHECKPOINT_VERIFIER]... [--schedule NAME] [--record-in-index]
                     KIND is sox, gdpr, hipaa, lineage or reconciliation
  batchaudit verify-report --key VERIFIER_KEY [--checkpoint-key CHECKPOINT_VERIFIER]... REPORT_DIR
  batchaudit keygen --name NAME --out SIGNER_KEY_FILE   (prints the verifier key)

Elasticsearch (roles, templates, indices and API keys of a least-privilege deployment):
  batchaudit es setup --es URL [--es-user U --es-password P | --es-api-key K] [--es-ca FILE] [--api-keys]

Kibana (the trail in Elasticsearch):
  batchaudit kibana import --kibana URL [--space S] [--user U --password P | --api-key K] [--ca FILE] [--es-prefix P]
  batchaudit kibana export [--out FILE] [--es-prefix P]
  batchaudit history RECORD_ID --kibana-url URL [--kibana-space S]   print the Discover link instead
  batchaudit events --batch ID --kibana-url URL [--kibana-space S]   print the Run detail dashboard link instead

PERIOD is --since D (7d, 2w, 36h, 90m) or --from T [--to T]: RFC 3339 or 2026-11-01[T15:04[:05]]
in UTC; --from is included, --to excluded. Filters combine with AND.

Every reading command takes:
  --db PATH          SQLite audit database (default ./batchaudit-data/audit.db)
  --es URL           read from Elasticsearch instead (e.g. http://127.0.0.1:9200)
  --es-prefix PREFIX Elasticsearch index prefix (default batchaudit)
  --es-user U --es-password P   basic authentication (or ES_USER, ES_PASSWORD)
  --es-api-key KEY   API key, the encoded form (or ES_API_KEY); wins over --es-user
  --es-ca FILE       CA of Elasticsearch's https certificate, PEM (or ES_CA)
  --output FORMAT    text (aligned columns, default), json or csv; --json is --output json

Examples:
  batchaudit runs --since 24h --status failure
  batchaudit runs --latest                      the latest run of every job
  batchaudit runs --children 01934f6e-8a00-7d11-8f2e-6c3b2a1d0e9f
  batchaudit runs --job orders-clean --changes     (runs with new code or configuration)
  batchaudit events --batch 01934f6e-8a00-7d11-8f2e-6c3b2a1d0e9f
  batchaudit events --actor alice --since 7d
  batchaudit events --dataset dw.orders --change delete --output csv
  batchaudit events --finding data_loss --from 2026-11-01 --to 2026-12-01
  batchaudit events --lineage ord-A-1002
  batchaudit history A-1002
  batchaudit verify --key signing.pub --checkpoints checkpoints.jsonl
  batchaudit prove 01a2022b-3090-7665-ae0d-8c1a18fd2ed2 --out proof.json
  batchaudit verify-proof proof.json --key signing.pub
  batchaudit keygen --name reports.example.com --out report.key > report.pub
  batchaudit report sox --from 2026-07-01 --to 2026-10-01 --key report.key --out reports/
  batchaudit verify-report --key report.pub --checkpoint-key signing.pub reports/sox-20260701T000000Z-20261001T000000Z-1a2b3c4d
`

// command is one subcommand: its flags and what it does with an open store.
type command struct {
	flags func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) error
	// args is the number of positional arguments it takes.
	args     int
	argsName string
	// noStore: the command does not read the trail.
	noStore bool
}

var commands = map[string]command{
	"runs":          {flags: runsCommand},
	"events":        {flags: eventsCommand},
	"history":       {flags: historyCommand, args: 1, argsName: "RECORD_ID"},
	"deadletters":   {flags: deadLettersCommand},
	"verify":        {flags: verifyCommand},
	"report":        {flags: reportCommand, args: 1, argsName: "KIND (sox, gdpr, hipaa, lineage or reconciliation)"},
	"verify-report": {flags: verifyReportCommand, args: 1, argsName: "REPORT_DIR", noStore: true},
	"keygen":        {flags: keygenCommand, noStore: true},
	"checkpoint":    {flags: checkpointCommand},
	"prove":         {flags: proveCommand, args: 1, argsName: "EVENT_ID"},
	"verify-proof":  {flags: verifyProofCommand, args: 1, argsName: "BUNDLE", noStore: true},
	"retention":     {flags: retentionCommand},
}

// cli is what every command writes to and reads from.
type cli struct {
	out    io.Writer
	errOut io.Writer
	format string // formatText, formatJSON or formatCSV
	store  store.Store
	// storeName says which trail was opened (for report envelopes).
	storeName string
	// principal is the Elasticsearch user the store authenticates as, if
	// one was given.
	principal string
}

// errUsage marks errors that are the caller's invocation, not the trail.
var errUsage = errors.New("usage")

// errVerify marks a trail that failed verification (already reported).
var errVerify = errors.New("verification failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name, code, ok := commandWord(args, usage, stdout, stderr)
	if !ok {
		return code
	}
	switch name {
	case "kibana":
		return kibanaCommand(ctx, args[1:], stdout, stderr)
	case "es":
		return esCommand(ctx, args[1:], stdout, stderr)
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "batchaudit: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("batchaudit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", sqlitestore.DefaultPath, "SQLite audit database")
	output := fs.String("output", formatText, "output format: text, json or csv")
	jsonOut := fs.Bool("json", false, "print JSON (same as --output json)")
	es := addESFlags(fs, "read from Elasticsearch at this URL instead of SQLite (e.g. http://127.0.0.1:9200)")
	exec := cmd.flags(fs)
	positional, code, ok := parseCommandLine(fs, args[1:], name, cmd.args, cmd.argsName, stderr)
	if !ok {
		return code
	}
	format := *output
	if *jsonOut {
		format = formatJSON
	}
	if format != formatText && format != formatJSON && format != formatCSV {
		fmt.Fprintf(stderr, "batchaudit %s: --output %q is not one of text, json, csv\n", name, format)
		return exitUsage
	}
	c := &cli{out: stdout, errOut: stderr, format: format}
	var err error
	// A command that only prints a Kibana link does not read the trail.
	if k := fs.Lookup("kibana-url"); !cmd.noStore && (k == nil || k.Value.String() == "") {
		if *es.url != "" {
			c.store, err = openElasticsearch(ctx, es)
			c.storeName = "elasticsearch:" + *es.url + " index prefix " + *es.prefix
			if *es.apiKey == "" {
				c.principal = *es.user
			}
		} else {
			c.store, err = openStore(ctx, *db)
			c.storeName = "sqlite:" + *db
		}
		if err != nil {
			return exitCode(name, err, stderr)
		}
		defer c.store.Close()
	}
	return exitCode(name, exec(ctx, c, positional), stderr)
}

// commandWord takes the command (or subcommand) word off args; without one
// it prints the usage to stderr, for help to stdout, and returns ok false
// with the exit code.
func commandWord(args []string, usage string, stdout, stderr io.Writer) (word string, code int, ok bool) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return "", exitUsage, false
	}
	if w := args[0]; w == "-h" || w == "--help" || w == "help" {
		fmt.Fprint(stdout, usage)
		return "", exitOK, false
	}
	return args[0], exitOK, true
}

// parseCommandLine parses the flags and checks the number of positional
// arguments; on a mistake it has told the user and returns ok false.
func parseCommandLine(fs *flag.FlagSet, args []string, name string, want int, argsName string, stderr io.Writer) (positional []string, code int, ok bool) {
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK, false
		}
		return nil, exitUsage, false
	}
	if len(positional) != want {
		if want == 0 {
			fmt.Fprintf(stderr, "batchaudit %s: unexpected argument %q\n", name, positional[0])
		} else {
			fmt.Fprintf(stderr, "batchaudit %s: expected %s\n", name, argsName)
		}
		return nil, exitUsage, false
	}
	return positional, exitOK, true
}

// exitCode reports the error of command name and returns the exit code.
func exitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errVerify):
		return exitFail
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "batchaudit %s: %v\n", name, strings.TrimPrefix(err.Error(), "usage: "))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "batchaudit %s: %v\n", name, err)
		return exitFail
	}
}

// parseInterleaved lets flags follow positional arguments
// ("history A-1002 --json"), which the flag package alone does not.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// openStore opens the trail for reading; a missing database is an error
// here rather than an empty trail, since it usually means a wrong --db.
func openStore(ctx context.Context, path string) (store.Store, error) {
	if path != sqlitestore.Memory {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no audit database at %s (has the collector run? pass --db PATH)", path)
		}
	}
	return sqlitestore.Open(ctx, path)
}

// openElasticsearch opens the Elasticsearch backend for reading: it installs
// no templates and creates no indices.
func openElasticsearch(ctx context.Context, f *esFlags) (store.Store, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	return esstore.New(ctx, cfg, zap.NewNop())
}

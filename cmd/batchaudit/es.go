package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/retention"
)

// Environment variables for the Elasticsearch credentials (the names
// configs/elasticsearch*.yaml use), so that secrets need not appear on the
// command line. Flags win.
const (
	envESUser     = "ES_USER"
	envESPassword = "ES_PASSWORD"
	envESAPIKey   = "ES_API_KEY"
	envESCA       = "ES_CA"
)

// esFlags are the connection flags of every command that talks to
// Elasticsearch.
type esFlags struct {
	url, prefix, user, password, apiKey, ca *string
}

func addESFlags(fs *flag.FlagSet, urlHelp string) *esFlags {
	return &esFlags{
		url:      fs.String("es", "", urlHelp),
		prefix:   fs.String("es-prefix", esstore.NewDefaultConfig().IndexPrefix, "Elasticsearch index prefix"),
		user:     fs.String("es-user", os.Getenv(envESUser), "Elasticsearch user for basic authentication (or "+envESUser+")"),
		password: fs.String("es-password", os.Getenv(envESPassword), "password of --es-user (or "+envESPassword+")"),
		apiKey:   fs.String("es-api-key", os.Getenv(envESAPIKey), "Elasticsearch API key, the encoded form (or "+envESAPIKey+"); wins over --es-user"),
		ca:       fs.String("es-ca", os.Getenv(envESCA), "PEM file of the CA of Elasticsearch's https certificate (or "+envESCA+")"),
	}
}

// config is the store configuration the flags describe; it installs no
// templates and creates no indices.
func (f *esFlags) config() (esstore.Config, error) {
	cfg := esstore.NewDefaultConfig()
	cfg.Endpoints = []string{*f.url}
	cfg.IndexPrefix = *f.prefix
	cfg.InstallTemplates = false
	if *f.apiKey != "" {
		cfg.APIKey = configopaque.String(*f.apiKey)
	} else {
		cfg.Username, cfg.Password = *f.user, configopaque.String(*f.password)
	}
	cfg.TLS.CAFile = *f.ca
	if err := cfg.Validate(); err != nil {
		// Name the flags, not the config keys behind them.
		msg := strings.NewReplacer("endpoints[0]", "--es", "index_prefix", "--es-prefix", "password: set username too, or use api_key",
			"--es-password: set --es-user too, or use --es-api-key").Replace(err.Error())
		return cfg, fmt.Errorf("%w: %s", errUsage, msg)
	}
	return cfg, nil
}

const esUsage = `batchaudit es prepares an Elasticsearch cluster for the audit trail.

Usage:
  batchaudit es setup --es URL [--es-user U --es-password P | --es-api-key K] [--es-ca FILE]
                      [--es-prefix P] [--role-prefix R] [--no-roles] [--api-keys [--api-key-expiration 90d]]
                      [--ilm [--ilm-delete-after 400d] [--min-retention 366d]]

setup creates or updates the roles R_writer, R_reader and R_admin (default R: batchaudit; the
definitions are store/esstore/roles/*.json, for the indices of --es-prefix), installs the index
templates, creates the indices with batchaudit's mapping and their write aliases, and with
--api-keys prints a new API key for the writer (the exporter's api_key) and one for the reader
(--es-api-key of the CLI, Kibana). Run it as a user with the R_admin privileges plus
manage_security (roles) and manage_api_key (keys), e.g. the superuser elastic; it is idempotent.
With --no-roles it only needs R_admin. --ilm also installs the ILM policy batchaudit-retention
(store/esstore/ilm/: hot, warm read-only after 30d, delete after --ilm-delete-after; needs
manage_ilm) when the cluster has ILM, attached to no index: batchaudit retention is what keeps the
proofs. See docs/elasticsearch.md.
`

func esCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub, code, ok := commandWord(args, esUsage, stdout, stderr)
	if !ok {
		return code
	}
	if sub != "setup" {
		fmt.Fprintf(stderr, "batchaudit es: unknown command %q\n\n%s", sub, esUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("batchaudit es setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	es := addESFlags(fs, "Elasticsearch URL, e.g. https://127.0.0.1:9201 (required)")
	opt := esstore.SetupOptions{Roles: true}
	fs.StringVar(&opt.RolePrefix, "role-prefix", "batchaudit", "roles are named <prefix>_writer, <prefix>_reader, <prefix>_admin")
	noRoles := fs.Bool("no-roles", false, "do not create or update the roles")
	fs.BoolVar(&opt.APIKeys, "api-keys", false, "create and print an API key for the writer and one for the reader")
	fs.StringVar(&opt.APIKeyExpiration, "api-key-expiration", "", "lifetime of the API keys, e.g. 90d (default: no expiry)")
	fs.BoolVar(&opt.ILM, "ilm", false, "also install the ILM policy "+esstore.ILMPolicyName+" when the cluster has ILM (needs manage_ilm)")
	deleteAfter := fs.String("ilm-delete-after", "400d", "the ILM policy's delete phase: days after rollover")
	minimum := fs.String("min-retention", retention.Days(retention.DefaultMinimum), "refuse an --ilm-delete-after shorter than this")
	output := fs.String("output", formatText, "output format: text or json")
	if _, code, ok := parseCommandLine(fs, args[1:], "es setup", 0, "", stderr); !ok {
		return code
	}
	return exitCode("es setup", func() error {
		if *es.url == "" {
			return fmt.Errorf("%w: --es URL is required", errUsage)
		}
		if *output != formatText && *output != formatJSON {
			return fmt.Errorf("%w: --output %q is not one of text, json", errUsage, *output)
		}
		cfg, err := es.config()
		if err != nil {
			return err
		}
		opt.Roles = !*noRoles
		if opt.ILM {
			after, err := parseDays("--ilm-delete-after", *deleteAfter)
			if err != nil {
				return err
			}
			least, err := parseDays("--min-retention", *minimum)
			if err != nil {
				return err
			}
			if after < least || after%(24*time.Hour) != 0 {
				return fmt.Errorf("%w: --ilm-delete-after %s must be whole days, at least --min-retention %s", errUsage, *deleteAfter, retention.Days(least))
			}
			opt.ILMDeleteAfter = retention.Days(after)
		}
		res, err := esstore.Setup(ctx, cfg, opt, zap.NewNop())
		if err != nil {
			return err
		}
		c := &cli{out: stdout, format: *output}
		if *output == formatJSON {
			return c.writeJSON(res)
		}
		if len(res.Roles) > 0 {
			fmt.Fprintf(stdout, "Roles created or updated: %s\n", strings.Join(res.Roles, ", "))
		}
		for _, index := range res.Indices {
			fmt.Fprintf(stdout, "Index %s: template installed, mapping checked, write alias %s\n", index, esstore.WriteAlias(index))
		}
		if ilm := res.ILM; ilm != nil {
			if ilm.Installed {
				fmt.Fprintf(stdout, "ILM policy %s installed (delete after %s); it is attached to no batchaudit index (docs/elasticsearch.md, Retention)\n", ilm.Policy, opt.ILMDeleteAfter)
			} else {
				fmt.Fprintf(stdout, "ILM policy %s NOT installed: %s\n", ilm.Policy, ilm.Reason)
			}
		}
		if res.WriterAPIKey != "" {
			fmt.Fprintf(stdout, "Writer API key (exporter elasticsearch.api_key): %s\n", res.WriterAPIKey)
			fmt.Fprintf(stdout, "Reader API key (batchaudit --es-api-key, ES_API_KEY): %s\n", res.ReaderAPIKey)
		}
		return nil
	}(), stderr)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/batchaudit/batchaudit/kibana"
	"github.com/batchaudit/batchaudit/store/esstore"
)

const kibanaUsage = `batchaudit kibana installs the audit trail's Kibana data views, saved searches and dashboards.

Usage:
  batchaudit kibana import --kibana URL [--space S] [--user U] [--password P] [--api-key K] [--ca FILE] [--es-prefix P]
  batchaudit kibana export [--out FILE] [--es-prefix P]

import sends the objects to Kibana's saved objects import API with overwrite: running it again
replaces them. Credentials also come from KIBANA_USER / KIBANA_PASSWORD or KIBANA_API_KEY (flags win).
export writes the same objects as NDJSON (Stack Management > Saved objects > Import takes the file).
`

// Environment variables for the Kibana credentials, so that passwords need
// not appear on the command line.
const (
	envKibanaUser     = "KIBANA_USER"
	envKibanaPassword = "KIBANA_PASSWORD"
	envKibanaAPIKey   = "KIBANA_API_KEY"
)

func kibanaCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub, code, ok := commandWord(args, kibanaUsage, stdout, stderr)
	if !ok {
		return code
	}
	fs := flag.NewFlagSet("batchaudit kibana "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	prefix := fs.String("es-prefix", esstore.NewDefaultConfig().IndexPrefix, "Elasticsearch index prefix of the trail (the exporter's index_prefix)")
	var exec func() error
	switch sub {
	case "export":
		out := fs.String("out", "", "write the NDJSON to this file (default: standard output)")
		exec = func() error { return kibanaExport(*prefix, *out, stdout) }
	case "import":
		o := kibana.ImportOptions{}
		fs.StringVar(&o.KibanaURL, "kibana", "", "Kibana URL, e.g. https://kibana:5601 (required)")
		fs.StringVar(&o.Space, "space", "", "Kibana space id (default: the default space)")
		fs.StringVar(&o.Username, "user", os.Getenv(envKibanaUser), "user for basic authentication (or "+envKibanaUser+")")
		fs.StringVar(&o.Password, "password", os.Getenv(envKibanaPassword), "password (or "+envKibanaPassword+")")
		fs.StringVar(&o.APIKey, "api-key", os.Getenv(envKibanaAPIKey), "API key, base64 encoded id:key (or "+envKibanaAPIKey+"); wins over --user")
		fs.StringVar(&o.CAFile, "ca", "", "PEM file of the certificate authority of Kibana's https certificate")
		exec = func() error {
			if o.KibanaURL == "" {
				return fmt.Errorf("%w: --kibana URL is required", errUsage)
			}
			o.IndexPrefix = *prefix
			return kibanaImport(ctx, o, stdout)
		}
	default:
		fmt.Fprintf(stderr, "batchaudit kibana: unknown command %q\n\n%s", sub, kibanaUsage)
		return exitUsage
	}
	name := "kibana " + sub
	if _, code, ok := parseCommandLine(fs, args[1:], name, 0, "", stderr); !ok {
		return code
	}
	cfg := esstore.NewDefaultConfig()
	cfg.IndexPrefix = *prefix
	if err := cfg.Validate(); err != nil {
		return exitCode(name, fmt.Errorf("%w: --es-prefix: %v", errUsage, err), stderr)
	}
	return exitCode(name, exec(), stderr)
}

func kibanaExport(prefix, out string, stdout io.Writer) error {
	b, err := kibana.NDJSON(prefix)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote the Kibana saved objects for indices %s-* to %s.\n", prefix, out)
	return nil
}

func kibanaImport(ctx context.Context, o kibana.ImportOptions, stdout io.Writer) error {
	res, err := kibana.Import(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Imported %d saved objects into %s (an existing copy is replaced). Dashboards:\n", res.SuccessCount, res.URL)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, d := range res.Dashboards {
		fmt.Fprintf(tw, "  %s\t%s\n", d.Title, d.URL)
	}
	return tw.Flush()
}

// kibanaLinkFlags adds --kibana-url and --kibana-space to a command that can
// print a Kibana link instead of reading the trail.
func kibanaLinkFlags(fs *flag.FlagSet, what string) (url, space *string) {
	url = fs.String("kibana-url", "", "print the link to "+what+" in the Kibana at this URL instead (the trail is not read)")
	space = fs.String("kibana-space", "", "Kibana space the objects were imported into (default: the default space)")
	return url, space
}

func (c *cli) printLink(url string, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	_, err = fmt.Fprintln(c.out, url)
	return err
}

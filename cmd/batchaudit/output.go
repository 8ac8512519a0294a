package main

import (
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Output formats (--output).
const (
	formatText = "text"
	formatJSON = "json"
	formatCSV  = "csv"
)

// textBlock is how many rows of aligned text share column widths: results
// are streamed, so the table is aligned block by block rather than held in
// memory whole.
const textBlock = 1000

// view says how one kind of result prints in each format.
type view[T any] struct {
	text    []string // header of the aligned text table
	textRow func(*T) []string
	csv     []string // header of the CSV
	csvRow  func(*T) []string
	json    func(*T) any
}

// emit streams what each yields to c.out in c's format: an aligned table
// (empty, when nothing matched), CSV with a header, or a JSON array.
func emit[T any](c *cli, v view[T], empty string, each func(func(*T) error) error) error {
	switch c.format {
	case formatJSON:
		n := 0
		err := each(func(x *T) error {
			b, err := json.MarshalIndent(v.json(x), "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if n == 0 {
				sep = "[\n  "
			}
			n++
			_, err = fmt.Fprintf(c.out, "%s%s", sep, b)
			return err
		})
		if err != nil {
			return err
		}
		if n == 0 {
			_, err = fmt.Fprintln(c.out, "[]")
		} else {
			_, err = fmt.Fprintln(c.out, "\n]")
		}
		return err
	case formatCSV:
		w := csv.NewWriter(c.out)
		if err := w.Write(v.csv); err != nil {
			return err
		}
		if err := each(func(x *T) error { return w.Write(v.csvRow(x)) }); err != nil {
			return err
		}
		w.Flush()
		return w.Error()
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	header := strings.Join(v.text, "\t") + "\n"
	n := 0
	err := each(func(x *T) error {
		if n == 0 {
			if _, err := fmt.Fprint(tw, header); err != nil {
				return err
			}
		} else if n%textBlock == 0 {
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		n++
		_, err := fmt.Fprint(tw, strings.Join(v.textRow(x), "\t")+"\n")
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		_, err := fmt.Fprintln(c.out, empty)
		return err
	}
	return tw.Flush()
}

// periodFlags adds --since, --from and --to to fs; the returned function
// resolves them to [from, to) once the flags are parsed.
func periodFlags(fs *flag.FlagSet, what string) func() (from, to time.Time, err error) {
	since := fs.String("since", "", "only "+what+" within this long before now, e.g. 7d, 2w, 36h, 90m")
	fromS := fs.String("from", "", "only "+what+" at or after this time (RFC 3339, or 2006-01-02[T15:04[:05]] in UTC)")
	toS := fs.String("to", "", "only "+what+" before this time (excluded; same forms as --from)")
	return func() (from, to time.Time, err error) {
		if *since != "" && *fromS != "" {
			return from, to, fmt.Errorf("%w: use --since or --from, not both", errUsage)
		}
		if *since != "" {
			d, err := parseSince(*since)
			if err != nil {
				return from, to, err
			}
			from = time.Now().Add(-d)
		}
		if *fromS != "" {
			if from, err = parseTime("--from", *fromS); err != nil {
				return from, to, err
			}
		}
		if *toS != "" {
			if to, err = parseTime("--to", *toS); err != nil {
				return from, to, err
			}
		}
		if !from.IsZero() && !to.IsZero() && !from.Before(to) {
			return from, to, fmt.Errorf("%w: the period is empty (--to must be after the start)", errUsage)
		}
		return from, to, nil
	}
}

// parseSince reads a Go duration, or a whole number of days (7d) or weeks
// (2w), which time.ParseDuration lacks.
func parseSince(s string) (time.Duration, error) { return parseDays("--since", s) }

// parseDays is parseSince for the flag named flagName.
func parseDays(flagName, s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: %s is required (e.g. 400d)", errUsage, flagName)
	}
	d, err := time.ParseDuration(s)
	if unit := s[len(s)-1]; err != nil && (unit == 'd' || unit == 'w') {
		if n, nerr := strconv.Atoi(s[:len(s)-1]); nerr == nil {
			d, err = time.Duration(n)*24*time.Hour, nil
			if unit == 'w' {
				d *= 7
			}
		}
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: %s %q is not a positive duration (e.g. 7d, 2w, 36h, 90m)", errUsage, flagName, s)
	}
	return d, nil
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}

// parseTime reads RFC 3339 or a date with an optional time of day in UTC.
func parseTime(flagName, s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %s %q is not a time (RFC 3339, or 2006-01-02[T15:04[:05]] in UTC)", errUsage, flagName, s)
}

package reportextension

import "time"

// periodKind finds the start of the period that contains a time; periods
// follow one another without gaps, in the configured time zone.
type periodKind func(t time.Time) time.Time

var periods = map[string]periodKind{
	"hour": func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, t.Location())
	},
	"day": func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location()) },
	"week": func(t time.Time) time.Time {
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(t.Year(), t.Month(), t.Day()-back, 0, 0, 0, 0, t.Location())
	},
	"month": func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, t.Location()) },
	"quarter": func(t time.Time) time.Time {
		return time.Date(t.Year(), (t.Month()-1)/3*3+1, 1, 0, 0, 0, 0, t.Location())
	},
	"year": func(t time.Time) time.Time { return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, t.Location()) },
}

// previous returns the start of the period that ends at end (a period
// start).
func (p periodKind) previous(end time.Time) time.Time { return p(end.Add(-time.Nanosecond)) }

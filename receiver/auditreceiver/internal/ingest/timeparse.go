package ingest

import (
	"errors"
	"math"
	"time"
)

// Layouts tried in order. Timestamps without a zone are taken as UTC, which is
// what Python's naive datetime.isoformat() and many loggers produce.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// parseTime accepts RFC 3339 text (with or without zone) or a Unix epoch
// number in seconds, milliseconds, microseconds or nanoseconds (told apart by
// magnitude).
func parseTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case string:
		for _, l := range timeLayouts {
			if ts, err := time.Parse(l, t); err == nil {
				return ts.UTC(), nil
			}
		}
		return time.Time{}, errors.New("is not an RFC 3339 timestamp (e.g. 2026-11-01T02:03:04.5Z) or a Unix epoch number")
	case int64:
		if t < 0 {
			return time.Time{}, errors.New("is not a valid Unix epoch number")
		}
		return epoch(float64(t), t), nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
			return time.Time{}, errors.New("is not a valid Unix epoch number")
		}
		return epoch(t, 0), nil
	}
	return time.Time{}, errors.New("must be RFC 3339 text or a Unix epoch number")
}

func epoch(f float64, i int64) time.Time {
	abs := math.Abs(f)
	switch {
	case abs < 1e11: // seconds (until year 5138)
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC()
	case abs < 1e14:
		return time.UnixMilli(int64(f)).UTC()
	case abs < 1e17:
		return time.UnixMicro(int64(f)).UTC()
	}
	if i != 0 {
		return time.Unix(0, i).UTC()
	}
	return time.Unix(0, int64(f)).UTC()
}

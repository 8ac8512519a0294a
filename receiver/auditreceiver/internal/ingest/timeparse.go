package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Layouts tried in order. Timestamps without a zone are taken as UTC, which is
// what Python's naive datetime.isoformat() and many loggers produce.
var (
	zonedLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00"}
	timeLayouts  = append(slices.Clone(zonedLayouts), "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999")
)

// parseTime accepts RFC 3339 text (with or without zone) or a Unix epoch
// number in seconds, milliseconds, microseconds or nanoseconds (told apart by
// magnitude). It returns the exact time sent, whatever its year: the accepted
// window is checked later (checkTime), for every protocol alike.
func parseTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case string:
		ts, err := parseRFC3339(t, timeLayouts)
		if errors.Is(err, errNotRFC3339) {
			err = fmt.Errorf("%w or a Unix epoch number", err)
		}
		return ts, err
	case int64:
		if t < 0 {
			return time.Time{}, errors.New("is not a valid Unix epoch number (negative)")
		}
		return intEpoch(t), nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
			return time.Time{}, errors.New("is not a valid Unix epoch number")
		}
		return floatEpoch(t)
	case json.Number:
		return time.Time{}, errors.New("is a number too large to be a Unix epoch time")
	}
	return time.Time{}, errors.New("must be RFC 3339 text or a Unix epoch number")
}

// parseRFC3339 reads RFC 3339 date-times with any of layouts, including what
// Go's parser lacks: lower-case "t" and "z" (RFC 3339 §5.6). What cannot be
// stored exactly is an error, never rounded: a leap second (:60) and digits
// beyond nanoseconds that are not zeros.
func parseRFC3339(s string, layouts []string) (time.Time, error) {
	u := strings.ToUpper(s) // the only letters of RFC 3339 are T and Z
	var err error
	for _, l := range layouts {
		var t time.Time
		if t, err = time.Parse(l, u); err == nil {
			if p := subNanoDigits(u); p != "" {
				return time.Time{}, errors.New("has more than nanosecond precision, which cannot be stored exactly")
			}
			if t.IsZero() {
				// The zero time means "no time" to the event model.
				return time.Time{}, errors.New("is outside the accepted time window")
			}
			return t.UTC(), nil
		}
	}
	if isLeapSecond(u) {
		return time.Time{}, errors.New("is a leap second (:60), which cannot be stored; send the following second")
	}
	return time.Time{}, errNotRFC3339
}

var errNotRFC3339 = errors.New("is not an RFC 3339 date-time (e.g. 2026-11-01T02:03:04.5Z)")

// subNanoDigits returns the fraction digits after the ninth when any of them
// is not zero.
func subNanoDigits(s string) string {
	i := strings.IndexAny(s, ".,")
	if i < 0 {
		return ""
	}
	j := i + 1
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j-i-1 <= 9 || strings.Trim(s[i+10:j], "0") == "" {
		return ""
	}
	return s[i+10 : j]
}

// isLeapSecond reports a date-time whose seconds are 60.
func isLeapSecond(s string) bool {
	if len(s) < 19 || s[13] != ':' || s[16] != ':' {
		return false
	}
	return s[17:19] == "60"
}

// intEpoch reads an integer epoch; time.Unix* never overflow.
func intEpoch(i int64) time.Time {
	switch {
	case i < 1e11: // seconds (until year 5138)
		return time.Unix(i, 0).UTC()
	case i < 1e14:
		return time.UnixMilli(i).UTC()
	case i < 1e17:
		return time.UnixMicro(i).UTC()
	}
	return time.Unix(0, i).UTC()
}

// floatEpoch reads a fractional or large epoch number exactly: the double is
// scaled to nanoseconds in arbitrary precision, so nothing overflows and no
// fraction of a millisecond or microsecond is dropped.
func floatEpoch(f float64) (time.Time, error) {
	var unit int64
	switch {
	case f < 1e11:
		unit = 1e9
	case f < 1e14:
		unit = 1e6
	case f < 1e17:
		unit = 1e3
	default:
		unit = 1
	}
	x := new(big.Float).SetPrec(256).SetFloat64(f)
	x.Mul(x, new(big.Float).SetInt64(unit))
	ns, _ := x.Int(nil) // toward zero: below a nanosecond is not stored
	sec, rem := new(big.Int).QuoRem(ns, big.NewInt(1e9), new(big.Int))
	if !sec.IsInt64() || sec.Int64() > 1<<40 {
		return time.Time{}, errors.New("is a number too large to be a Unix epoch time")
	}
	return time.Unix(sec.Int64(), rem.Int64()).UTC(), nil
}

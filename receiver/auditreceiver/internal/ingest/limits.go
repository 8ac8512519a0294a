package ingest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/batchaudit/batchaudit/auditevent"
)

// Limits are the per-item checks every protocol applies to an event after
// mapping it to the model and before it is delivered (finish). The receiver
// fills them from its configuration; the zero value means DefaultLimits.
type Limits struct {
	// MaxDepth bounds how deeply attribute values nest maps and arrays: a
	// scalar attribute has depth 0, a map or list of scalars depth 1.
	MaxDepth int
	// MaxValues bounds the values of one event's attributes together: every
	// attribute, map entry and array element, at any depth, counts one.
	MaxValues int
	// MaxStringBytes bounds every string: attribute keys and values at any
	// depth, the event name and the body.
	MaxStringBytes int
	// TimeMin and TimeMax bound event times to [TimeMin, TimeMax).
	TimeMin, TimeMax time.Time
	// Names are the configuration keys of the limits, for the messages.
	Names LimitNames
}

// LimitNames name the settings behind Limits in rejection messages.
type LimitNames struct {
	MaxDepth, MaxValues, MaxStringBytes, TimeWindow string
}

// MaxDecodeDepth is the nesting every decoder refuses before decoding (the
// JSON reader, and the OTLP guards in guard.go, which count attribute value
// levels): deeper bodies are refused whole, as malformed or over a limit.
// A configured MaxDepth must stay below it so that items between the two are
// rejected one by one.
const MaxDecodeDepth = maxDepth

// The range of event times that can be stored: pdata holds unsigned
// nanoseconds since the epoch (0 means "not set", so checkTime refuses
// EarliestTime itself), the stores signed ones.
var (
	EarliestTime = time.Unix(0, 0).UTC()
	LatestTime   = time.Unix(0, math.MaxInt64).UTC()
)

// DefaultLimits are the receiver's defaults, the single source for its
// configuration defaults and for callers that pass no limits.
func DefaultLimits() Limits {
	return Limits{
		// Elasticsearch indexes record data, change values and the like as
		// flattened fields, which refuse objects nested deeper than 20
		// levels (depth_limit); an event the receiver accepts must not
		// become a dead letter there.
		MaxDepth:       20,
		MaxValues:      100_000,
		MaxStringBytes: 4 << 20,
		TimeMin:        time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		TimeMax:        time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		Names: LimitNames{MaxDepth: "limits::max_attribute_depth", MaxValues: "limits::max_values_per_event",
			MaxStringBytes: "limits::max_string_bytes", TimeWindow: "time_window"},
	}
}

func (l Limits) orDefault() Limits {
	if l == (Limits{}) {
		return DefaultLimits()
	}
	return l
}

// maxValueProblems caps the value problems listed for one item.
const maxValueProblems = 10

// checkEvent reports what in ev cannot be stored exactly as sent or is over
// a limit. limit is set when a size, count or depth limit was exceeded (the
// refusal then counts as "limit" rather than "invalid").
func checkEvent(ev *auditevent.Event, l Limits) (probs []auditevent.FieldError, limit bool) {
	c := checks.Get().(*valueCheck)
	defer checks.Put(c)
	c.reset(l, false)
	c.run(ev)
	if c.found {
		// Problems are rare: find them again in key order, so the same item
		// always gets the same answer whatever the map iteration order.
		c.reset(l, true)
		c.run(ev)
	}
	probs, limit = c.probs, c.limit
	if p := checkTime(ev.Time, l); p != nil {
		probs = append(probs, *p)
	}
	return probs, limit
}

// checks pools the walkers: one runs for every item of every request.
var checks = sync.Pool{New: func() any { return new(valueCheck) }}

// checkTime reports a time outside the accepted window; the zero time is
// "not set" and left to Validate.
func checkTime(t time.Time, l Limits) *auditevent.FieldError {
	if t.IsZero() {
		return nil
	}
	if t.Equal(time.Unix(0, 0)) {
		return &auditevent.FieldError{Field: "timestamp", Reason: "1970-01-01T00:00:00Z (Unix time 0) means \"no time\" in OTLP and cannot be stored; send the real time"}
	}
	if t.Before(l.TimeMin) || !t.Before(l.TimeMax) {
		return &auditevent.FieldError{Field: "timestamp", Reason: fmt.Sprintf("%s is outside the accepted time window [%s, %s) (%s)",
			formatAnyTime(t), formatAnyTime(l.TimeMin), formatAnyTime(l.TimeMax), l.Names.TimeWindow)}
	}
	return nil
}

// formatAnyTime is RFC 3339 for any year (Format writes years beyond 9999
// as they are, which no RFC 3339 parser reads, but a person can).
func formatAnyTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// timeFields are the fields under which parsers report a time they could
// not read; Validate's "timestamp is required" is then redundant.
var timeFields = map[string]bool{"timestamp": true, "time": true, "event_time": true, "@timestamp": true, "eventTime": true}

// valueCheck walks an event's values. The first pass only looks for a
// problem, without allocating; the second collects them in key order.
type valueCheck struct {
	l       Limits
	collect bool
	sorted  bool
	found   bool
	limit   bool
	probs   []auditevent.FieldError
	values  int
	path    []string
}

// reset prepares c for a pass; the problems of a collecting pass are the
// caller's (a fresh slice each time).
func (c *valueCheck) reset(l Limits, collect bool) {
	*c = valueCheck{l: l, collect: collect, sorted: collect, path: c.path[:0]}
}

func (c *valueCheck) run(ev *auditevent.Event) {
	c.text("event_name", ev.Name)
	c.text("body", ev.Body)
	c.text("severity", ev.Severity)
	if !c.sorted {
		ev.Visit(c)
		return
	}
	attrs := ev.Attributes()
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		c.attr(k, attrs[k])
	}
}

func (c *valueCheck) problem(limit bool, format string, args ...any) {
	c.found = true
	c.limit = c.limit || limit
	if c.collect && len(c.probs) < maxValueProblems {
		c.probs = append(c.probs, auditevent.FieldError{Field: strings.Join(c.path, ""), Reason: fmt.Sprintf(format, args...)})
	}
}

// The auditevent.AttributeVisitor methods, for the first pass: typed, so
// that nothing is boxed.
func (c *valueCheck) String(k, v string) {
	if c.begin(k) {
		c.str(v, "")
	}
}

func (c *valueCheck) Strings(k string, v []string) {
	if c.begin(k) {
		c.strings(v, 0)
	}
}

func (c *valueCheck) Int(k string, v int64) {
	if c.begin(k) {
		c.integer(v)
	}
}

func (c *valueCheck) Value(k string, v any) { c.attr(k, v) }

// attr checks one attribute, for the second pass.
func (c *valueCheck) attr(k string, v any) {
	c.path = append(c.path[:0], "attributes")
	c.key(k)
	c.path[0] = attrName(k)
	c.value(v, 0)
}

// begin starts a modelled attribute (Visit hands Extra attributes, whose
// keys come from the client, to Value): it counts the value and reports
// whether the value is to be checked.
func (c *valueCheck) begin(k string) bool {
	c.path = append(c.path[:0], k)
	return c.count()
}

func attrName(k string) string {
	if k == "" {
		return `attributes[""]`
	}
	return k
}

// text checks a top-level string field.
func (c *valueCheck) text(field, s string) {
	c.path = append(c.path[:0], field)
	c.str(s, "")
}

// key checks a map key or attribute name; problems are reported on the
// enclosing value, naming the key by a quoted (escaped) prefix.
func (c *valueCheck) key(k string) {
	if c.l.MaxStringBytes > 0 && len(k) > c.l.MaxStringBytes || !utf8.ValidString(k) {
		q := k
		if len(q) > 32 {
			q = q[:32] + "…"
		}
		c.str(k, "has a key "+strconv.Quote(q)+" that ")
	}
}

func (c *valueCheck) str(s, what string) {
	if c.l.MaxStringBytes > 0 && len(s) > c.l.MaxStringBytes {
		c.problem(true, "%sis %d bytes long, over the limit of %d bytes (%s)", what, len(s), c.l.MaxStringBytes, c.l.Names.MaxStringBytes)
	}
	if !utf8.ValidString(s) {
		c.problem(false, "%sis not valid UTF-8 (first bad byte at offset %d); text must be UTF-8, it is never repaired", what, invalidUTF8At(s))
	}
}

func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return i
			}
		}
	}
	return len(s)
}

// count counts one value and reports whether it is within the limit.
func (c *valueCheck) count() bool {
	c.values++
	if c.l.MaxValues > 0 && c.values > c.l.MaxValues {
		if c.values == c.l.MaxValues+1 {
			c.problem(true, "the event's attributes hold more than %d values (every attribute, map entry and array element counts; %s)",
				c.l.MaxValues, c.l.Names.MaxValues)
		}
		return false
	}
	return true
}

// strings checks a list of strings found at depth.
func (c *valueCheck) strings(l []string, depth int) {
	if !c.container(depth) {
		return
	}
	for i, s := range l {
		c.push(i)
		if c.count() {
			c.str(s, "")
		}
		c.pop()
	}
}

// value checks v, found at depth levels of maps and arrays.
func (c *valueCheck) value(v any, depth int) {
	if !c.count() {
		return
	}
	switch t := v.(type) {
	case string:
		c.str(t, "")
	case []string:
		c.strings(t, depth)
	case []any:
		if c.container(depth) {
			for i, e := range t {
				c.push(i)
				c.value(e, depth+1)
				c.pop()
			}
		}
	case map[string]any:
		if c.container(depth) {
			if c.sorted {
				for _, k := range slices.Sorted(maps.Keys(t)) {
					c.member(k, t[k], depth)
				}
			} else {
				for k, e := range t {
					c.member(k, e, depth)
				}
			}
		}
	case int64:
		c.integer(t)
	case int:
		c.integer(int64(t))
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			c.problem(false, "is %v, which JSON cannot hold; send it as a string", t)
		}
	case json.Number:
		if !exactNumber(string(t)) {
			c.problem(false, "is a number that cannot be stored exactly (canonical JSON holds IEEE 754 doubles and integers up to ±2^53); send it as a string")
		}
	case bool, nil, []byte:
	default:
		c.problem(false, "has a value of type %T that cannot be stored", v)
	}
}

func (c *valueCheck) member(k string, v any, depth int) {
	c.key(k)
	if c.collect {
		c.path = append(c.path, "."+k)
	} else {
		c.path = append(c.path, "")
	}
	c.value(v, depth+1)
	c.pop()
}

// container reports whether a map or array at depth may be walked into.
func (c *valueCheck) container(depth int) bool {
	if c.l.MaxDepth > 0 && depth+1 > c.l.MaxDepth {
		c.problem(true, "nests maps and arrays deeper than %d levels (%s)", c.l.MaxDepth, c.l.Names.MaxDepth)
		return false
	}
	return true
}

func (c *valueCheck) push(i int) {
	if c.collect {
		c.path = append(c.path, "["+strconv.Itoa(i)+"]")
	} else {
		c.path = append(c.path, "")
	}
}

func (c *valueCheck) pop() { c.path = c.path[:len(c.path)-1] }

// maxExactInt is the largest integer RFC 8785 writes exactly (2^53).
const maxExactInt = 1 << 53

func (c *valueCheck) integer(i int64) {
	if i > maxExactInt || i < -maxExactInt {
		c.problem(false, "is an integer beyond ±2^53, which canonical JSON (RFC 8785) cannot hold exactly; send it as a string")
	}
}

// exactNumber reports whether the JSON number literal s survives canonical
// JSON: an integer within ±2^53, or a number whose nearest double prints as
// the same decimal value.
func exactNumber(s string) bool {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i <= maxExactInt && i >= -maxExactInt
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return false
	}
	if !strings.ContainsAny(s, ".eE") && math.Abs(f) > maxExactInt {
		return false // an integer literal beyond ±2^53
	}
	return exactDouble(s, f)
}

// exactDouble reports whether f, parsed from the literal s, has the decimal
// value s has: its shortest form (what canonical JSON writes) equals s but
// for notation.
func exactDouble(s string, f float64) bool {
	var buf [32]byte
	return sameDecimal(s, strconv.AppendFloat(buf[:0], f, 'e', -1, 64))
}

// sameDecimal compares two JSON number literals as decimal values, without
// allocating: it runs on every fractional number the JSON reader decodes.
func sameDecimal(a string, b []byte) bool {
	var abuf, bbuf [24]byte
	ad, ae, an, aok := decimalOf(a, &abuf)
	bd, be, bn, bok := decimalOf(string(b), &bbuf)
	switch {
	case !aok || !bok:
		return false
	case len(ad) == 0 || len(bd) == 0:
		return len(ad) == len(bd) // zeros, of either sign
	}
	return an == bn && ae == be && string(ad) == string(bd)
}

// decimalOf returns the significant digits of a number literal (no leading
// or trailing zeros) in buf, the exponent of its first digit, and its sign.
// ok is false when there are more significant digits than buf holds (more
// than any double has) or the exponent is absurd.
func decimalOf(s string, buf *[24]byte) (digits []byte, exp int, neg, ok bool) {
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	mant, e := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		n, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || n > 1<<20 || n < -(1<<20) {
			return nil, 0, neg, false
		}
		e = n
	}
	digits = buf[:0]
	intLen, lead, zeros := 0, 0, 0 // zeros: pending trailing zeros
	seenPoint, started := false, false
	for i := 0; i < len(mant); i++ {
		c := mant[i]
		if c == '.' {
			seenPoint = true
			continue
		}
		if !seenPoint {
			intLen++
		}
		switch {
		case c == '0' && !started:
			lead++
		case c == '0':
			zeros++
		default:
			started = true
			for ; zeros > 0; zeros-- {
				if len(digits) == len(buf) {
					return nil, 0, neg, false
				}
				digits = append(digits, '0')
			}
			if len(digits) == len(buf) {
				return nil, 0, neg, false
			}
			digits = append(digits, c)
		}
	}
	if len(digits) == 0 {
		return nil, 0, false, true
	}
	return digits, e + intLen - lead, neg, true
}

package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

var _ store.Integrity = (*Store)(nil)

// Tree implements store.Store.
func (s *Store) Tree(ctx context.Context, stream string) (tlog.Tree, error) {
	return s.log.Tree(ctx, stream)
}

// Reload implements store.Reloader.
func (s *Store) Reload(stream string) { s.log.Reload(stream) }

// Streams implements store.Integrity.
func (s *Store) Streams(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT stream FROM events UNION SELECT DISTINCT stream FROM dead_letters UNION SELECT name FROM streams ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: streams: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// Head implements store.Integrity.
func (s *Store) Head(ctx context.Context, stream string) (store.Head, error) {
	return backend{s}.Head(ctx, stream)
}

// EachEntry implements store.Integrity. For events it compares every search
// column with the value the stored document gives (one derivation serves the
// insert and this check), and the hash with the document's.
func (s *Store) EachEntry(ctx context.Context, stream string, fn func(*store.StoredEntry) error) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT sequence, 'event', id, hash, document, `+searchPacked+` FROM events WHERE stream = ?
		UNION ALL
		SELECT sequence, kind, event_id, doc_hash, document, NULL FROM dead_letters WHERE stream = ?
		ORDER BY 1`, stream, stream)
	if err != nil {
		return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	}
	defer rows.Close()
	for rows.Next() {
		e := store.StoredEntry{Stream: stream}
		var kind string
		var packed sql.NullString
		if err := rows.Scan(&e.Sequence, &kind, &e.EventID, &e.Hash, (*ownedBytes)(&e.Document), &packed); err != nil {
			return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
		}
		e.Kind = merkle.Kind(kind)
		if e.Kind == merkle.KindEvent {
			id, stored := e.EventID, packed.String
			e.Indexed = func(ev *auditevent.Event) []string {
				out := checkColumns(ev, stored)
				if id != ev.ID {
					// The id is how prove, history and redelivery find an event.
					out = append(out, fmt.Sprintf("column id is %q, the document says %q", id, ev.ID))
				}
				return out
			}
			e.IndexedKeys = &searchKeys
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ownedBytes takes the driver's []byte for a column without the copy
// database/sql makes for a *[]byte: modernc.org/sqlite allocates a new
// slice for every BLOB it returns (TestEachEntryOwnsDocuments would notice
// a driver that reuses one). A TEXT value is copied.
type ownedBytes []byte

func (o *ownedBytes) Scan(src any) error {
	switch v := src.(type) {
	case []byte:
		*o = v
	case string:
		*o = []byte(v)
	case nil:
		*o = nil
	default:
		return fmt.Errorf("a document of type %T", src)
	}
	return nil
}

var columnNames = strings.Split(strings.ReplaceAll(searchColumns, " ", ""), ",")

// searchPacked reads the search columns as one JSON array: one column of
// the driver instead of twelve, which was most of the cost of reading a
// row. JSON would take a BLOB for JSONB (X'276231' reads as "b1") or
// refuse it, so a row with a BLOB or NULL column (the comparison with the
// empty BLOB fails: every other value sorts below it) is written as
// {"hex": [...]} instead, a TEXT column as the hex of its bytes, a BLOB as
// {"blob": HEX}.
var searchPacked = func() string {
	hexed := make([]string, len(columnNames))
	for i, c := range columnNames {
		hexed[i] = fmt.Sprintf(`CASE typeof(%[1]s) WHEN 'text' THEN hex(%[1]s) WHEN 'blob' THEN json_object('blob', hex(%[1]s)) ELSE %[1]s END`, c)
	}
	return fmt.Sprintf(`CASE WHEN max(%[1]s) < x'' THEN json_array(%[1]s) ELSE json_object('hex', json_array(%[2]s)) END`,
		searchColumns, strings.Join(hexed, ", "))
}()

// checkColumns compares the stored search columns (searchPacked) with the
// ones derived from the stored document's event. When the JSON is what
// SQLite writes for the derived values, every column holds its value (JSON
// text decodes to one value, and a string, an integer and a real are
// written differently); otherwise it is decoded back into the columns'
// values and compared one by one, so the outcome is that of comparing the
// columns themselves (TestPackedColumnsMatchColumns).
func checkColumns(ev *auditevent.Event, packed string) []string {
	want := appendSearchColumns(make([]any, 0, len(columnNames)), ev)
	var buf [1024]byte
	if string(appendPacked(buf[:0], want)) == packed {
		return nil
	}
	stored, err := unpackColumns(packed)
	if err != nil {
		return []string{fmt.Sprintf("the search columns cannot be read (%v): %s", err, packed)}
	}
	var out []string
	for i, w := range want {
		if !sameColumn(stored[i], w) {
			out = append(out, fmt.Sprintf("column %s is %q, the document says %q", columnNames[i], fmt.Sprint(stored[i]), fmt.Sprint(w)))
		}
	}
	return out
}

// appendPacked writes derived search columns (strings and integers) as
// SQLite's json_array writes them.
func appendPacked(dst []byte, cols []any) []byte {
	dst = append(dst, '[')
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch v := c.(type) {
		case string:
			dst = appendJSONString(dst, v)
		case int64:
			dst = strconv.AppendInt(dst, v, 10)
		default:
			// Not a derived type: never equal, so the columns are compared one by one.
			return append(dst, 0)
		}
	}
	return append(dst, ']')
}

// appendJSONString escapes as SQLite's JSON functions do: quote,
// backslash and control characters; every other byte as is.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return append(dst, '"')
}

// unpackColumns decodes searchPacked into the values the driver gives for
// the columns: string, int64, float64, []byte or nil.
func unpackColumns(packed string) ([]any, error) {
	var vals []any
	var err error
	if strings.HasPrefix(packed, "{") {
		vals, err = unpackHexed(packed)
	} else {
		vals, err = unpackArray(packed)
	}
	if err == nil && len(vals) != len(columnNames) {
		err = fmt.Errorf("%d values for %d columns", len(vals), len(columnNames))
	}
	return vals, err
}

// unpackHexed reads the {"hex": [...]} form (ASCII only).
func unpackHexed(packed string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(packed))
	dec.UseNumber()
	var v struct{ Hex []any }
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	for i, x := range v.Hex {
		switch t := x.(type) {
		case string:
			b, err := hex.DecodeString(t)
			if err != nil {
				return nil, fmt.Errorf("text: %w", err)
			}
			v.Hex[i] = string(b)
		case json.Number:
			v.Hex[i] = number(string(t))
		case map[string]any:
			h, _ := t["blob"].(string)
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("blob: %w", err)
			}
			v.Hex[i] = b
		}
	}
	return v.Hex, nil
}

// unpackArray reads json_array's strings and numbers byte for byte
// (encoding/json would replace bytes that are not UTF-8, which a TEXT
// column may hold).
func unpackArray(s string) ([]any, error) {
	bad := fmt.Errorf("not a JSON array of strings and numbers")
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, bad
	}
	var out []any
	for i := 1; i < len(s)-1; {
		if len(out) > 0 {
			if s[i] != ',' {
				return nil, bad
			}
			i++
		}
		if s[i] != '"' {
			j := i
			for j < len(s)-1 && s[j] != ',' {
				j++
			}
			out = append(out, number(s[i:j]))
			i = j
			continue
		}
		var b []byte
		for i++; ; {
			if i >= len(s)-1 {
				return nil, bad
			}
			c := s[i]
			if c == '"' {
				i++
				break
			}
			if c != '\\' {
				b = append(b, c)
				i++
				continue
			}
			if i+1 >= len(s) {
				return nil, bad
			}
			switch e := s[i+1]; e {
			case 'b':
				b = append(b, '\b')
			case 't':
				b = append(b, '\t')
			case 'n':
				b = append(b, '\n')
			case 'f':
				b = append(b, '\f')
			case 'r':
				b = append(b, '\r')
			case 'u':
				if i+6 > len(s) {
					return nil, bad
				}
				r, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
				if err != nil {
					return nil, bad
				}
				b = utf8.AppendRune(b, rune(r))
				i += 4
			default:
				b = append(b, e)
			}
			i += 2
		}
		out = append(out, string(b))
	}
	return out, nil
}

// number reads a JSON number as the driver gives a column: int64, or
// float64 (the text itself if neither).
func number(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

var runColumnList = strings.Split(strings.ReplaceAll(runColumnNames, " ", ""), ",")

// EachRunSummary implements store.Integrity: the runs table's columns
// (what `runs` filters and sorts by) are compared with the summary.
func (s *Store) EachRunSummary(ctx context.Context, fn func(*store.Run, []string) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT summary, `+runColumnNames+` FROM runs ORDER BY batch_id`)
	if err != nil {
		return fmt.Errorf("sqlitestore: read runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var summary []byte
		stored := make([]any, len(runColumnList))
		dst := []any{&summary}
		for i := range stored {
			dst = append(dst, &stored[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return fmt.Errorf("sqlitestore: read run: %w", err)
		}
		var r store.Run
		if err := store.DecodeRun(summary, &r); err != nil {
			return fmt.Errorf("sqlitestore: run %v summary: %w", stored[0], err)
		}
		var diffs []string
		for i, w := range runColumns(nil, &r) {
			if !sameColumn(stored[i], w) {
				diffs = append(diffs, fmt.Sprintf("column %s is %q, the summary says %q", runColumnList[i], fmt.Sprint(stored[i]), fmt.Sprint(w)))
			}
		}
		if err := fn(&r, diffs); err != nil {
			return err
		}
	}
	return rows.Err()
}

// EntryOf implements store.Integrity.
func (s *Store) EntryOf(ctx context.Context, eventID string) (*store.StoredEntry, error) {
	e := store.StoredEntry{Kind: merkle.KindEvent, EventID: eventID}
	err := s.db.QueryRowContext(ctx, `SELECT stream, sequence, hash, document FROM events WHERE id = ?`, eventID).
		Scan(&e.Stream, &e.Sequence, &e.Hash, &e.Document)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: event %s: %w", eventID, err)
	}
	return &e, nil
}

// PutCheckpoint implements store.Integrity.
func (s *Store) PutCheckpoint(ctx context.Context, c store.StoredCheckpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO checkpoints (stream, size, root, note, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(stream, size) DO NOTHING`, c.Stream, c.Size, c.Root, c.Note, nanos(c.Created))
	if err != nil {
		return fmt.Errorf("sqlitestore: keep checkpoint %s/%d: %w", c.Stream, c.Size, err)
	}
	return nil
}

// Checkpoints implements store.Integrity.
func (s *Store) Checkpoints(ctx context.Context, stream string) ([]store.StoredCheckpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT size, root, note, created FROM checkpoints WHERE stream = ? ORDER BY size`, stream)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: checkpoints of %q: %w", stream, err)
	}
	defer rows.Close()
	var out []store.StoredCheckpoint
	for rows.Next() {
		c := store.StoredCheckpoint{Stream: stream}
		var created int64
		if err := rows.Scan(&c.Size, &c.Root, &c.Note, &created); err != nil {
			return nil, err
		}
		c.Created = fromNanos(created)
		out = append(out, c)
	}
	return out, rows.Err()
}

// sameColumn compares a scanned column with a derived one; the common types
// are compared directly, since verification does this for every event.
func sameColumn(stored, want any) bool {
	switch w := want.(type) {
	case string:
		if s, ok := stored.(string); ok {
			return s == w
		}
	case int64:
		if s, ok := stored.(int64); ok {
			return s == w
		}
	}
	return fmt.Sprint(stored) == fmt.Sprint(want)
}

// LastSequenceBefore implements store.Integrity. Both lookups walk the
// stream's sequence index backwards from its end, so a report on a recent
// period reads only the entries stored after it.
func (s *Store) LastSequenceBefore(ctx context.Context, stream string, t time.Time) (int64, error) {
	var ev, dl sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT sequence FROM events WHERE stream = ? AND time < ? ORDER BY sequence DESC LIMIT 1),
		(SELECT sequence FROM dead_letters WHERE stream = ? AND time < ? AND kind <> ? ORDER BY sequence DESC LIMIT 1)`,
		stream, nanos(t), stream, nanos(t), string(merkle.KindGap)).Scan(&ev, &dl)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: last sequence of %q before %s: %w", stream, t.UTC().Format(time.RFC3339Nano), err)
	}
	return max(ev.Int64, dl.Int64), nil
}

package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
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
	// Each table's streams by one index lookup a stream (SELECT DISTINCT
	// read the whole index: 20 ms on 200,000 events, before verify began).
	const each = `in_%[1]s(s) AS (SELECT min(stream) FROM %[1]s
		UNION ALL SELECT (SELECT min(stream) FROM %[1]s WHERE stream > in_%[1]s.s) FROM in_%[1]s WHERE in_%[1]s.s IS NOT NULL)`
	rows, err := s.db.QueryContext(ctx, `WITH RECURSIVE `+fmt.Sprintf(each, "events")+`, `+fmt.Sprintf(each, "dead_letters")+`
		SELECT s FROM in_events WHERE s IS NOT NULL UNION SELECT s FROM in_dead_letters WHERE s IS NOT NULL
		UNION SELECT name FROM streams ORDER BY 1`)
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
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	}
	defer c.Close()
	return withEntryReader(ctx, c, func(r *entryReader) error { return r.read(stream, nil, nil, fn) })
}

// entryReader reads entries on one connection at the driver's level:
// database/sql's locking and conversions per row cost ≈5% of verify's CPU.
// A value of another type than the schema's is converted as Scan would.
type entryReader struct {
	ctx   context.Context
	conn  driver.Conn
	stmts map[string]driver.Stmt // prepared once: parts are many and small
}

// withEntryReader runs fn with an entryReader on c.
func withEntryReader(ctx context.Context, c *sql.Conn, fn func(*entryReader) error) error {
	return c.Raw(func(dc any) error {
		r := &entryReader{ctx: ctx, conn: dc.(driver.Conn), stmts: map[string]driver.Stmt{}}
		defer func() {
			for _, st := range r.stmts {
				_ = st.Close()
			}
		}()
		return fn(r)
	})
}

// read calls fn for the entries of stream with lo < sequence <= hi (nil:
// no bound) in sequence order.
func (r *entryReader) read(stream string, lo, hi *int64, fn func(*store.StoredEntry) error) error {
	cond, args := "stream = ?", []any{stream}
	if lo != nil {
		cond, args = cond+" AND sequence > ?", append(args, *lo)
	}
	if hi != nil {
		cond, args = cond+" AND sequence <= ?", append(args, *hi)
	}
	q := `SELECT sequence, ` + eventPacked + `, document FROM events WHERE ` + cond + `
		UNION ALL
		SELECT sequence, ` + deadPacked + `, document FROM dead_letters WHERE ` + cond + `
		ORDER BY 1`
	st, ok := r.stmts[q]
	if !ok {
		var err error
		if st, err = r.conn.(driver.ConnPrepareContext).PrepareContext(r.ctx, q); err != nil {
			return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
		}
		r.stmts[q] = st
	}
	var named []driver.NamedValue
	for i, a := range append(args, args...) {
		named = append(named, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(r.ctx, named)
	if err != nil {
		return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	}
	defer rows.Close()
	row := make([]driver.Value, 3)
	for {
		if err := rows.Next(row); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
		}
		e, err := entryOf(stream, row)
		if err != nil {
			return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// entryOf makes an entry of a row of entryReader's query.
func entryOf(stream string, row []driver.Value) (*store.StoredEntry, error) {
	e := &store.StoredEntry{Stream: stream}
	var packed string
	if err := scan(&packed, row[1]); err != nil {
		return nil, err
	}
	var kind string
	tail, vals, err := splitPacked(packed, [3]*string{&kind, &e.EventID, &e.Hash})
	if err != nil {
		return nil, fmt.Errorf("the packed columns cannot be read (%w): %s", err, packed)
	}
	if err := errors.Join(scan(&e.Sequence, row[0]), (*ownedBytes)(&e.Document).Scan(row[2])); err != nil {
		return nil, err
	}
	e.Kind = merkle.Kind(kind)
	if e.Kind == merkle.KindEvent {
		id := e.EventID
		e.Indexed = func(ev *auditevent.Event) []string {
			out := checkColumns(ev, tail, vals)
			if id != ev.ID {
				// The id is how prove, history and redelivery find an event.
				out = append(out, fmt.Sprintf("column id is %q, the document says %q", id, ev.ID))
			}
			return out
		}
		e.IndexedKeys = &searchKeys
	}
	return e, nil
}

// scan takes a driver value as Scan into a *T does (sql.Null[T] converts
// the same way).
func scan[T any](dst *T, v driver.Value) error {
	if x, ok := v.(T); ok {
		*dst = x
		return nil
	}
	var n sql.Null[T]
	if err := n.Scan(v); err != nil {
		return err
	}
	if !n.Valid {
		return fmt.Errorf("converting NULL to %T is unsupported", *dst)
	}
	*dst = n.V
	return nil
}

// EntryParts implements store.PartReader. All readers see one snapshot:
// their read transactions start while a write transaction held here keeps
// every writer from committing, so a collector writing or pruning
// meanwhile cannot make one reader see what another does not (a false gap
// or truncation; TestEntryPartsWhileWriting).
func (s *Store) EntryParts(ctx context.Context, stream string, n int) (store.EntryParts, error) {
	n = max(1, min(n, s.maxConns-2)) // leave a connection for tiles and one for a writer
	p := &entryParts{stream: stream, parts: 1}
	var hold *sql.Conn
	if n > 1 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: %w", err)
		}
		if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			// Writers kept the lock past busy_timeout (or the file is
			// read-only): one reader, which needs no lock, is slower only.
			_ = c.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			n = 1
		} else {
			hold = c
		}
	}
	var err error
	for i := 0; i < n && err == nil; i++ {
		var c *sql.Conn
		if c, err = s.beginRead(ctx); err == nil {
			p.conns = append(p.conns, c)
			// The first read fixes the transaction's snapshot.
			_, err = c.ExecContext(ctx, `SELECT name FROM streams LIMIT 1`)
		}
	}
	if hold != nil {
		if herr := endRead(ctx, hold); err == nil {
			err = herr
		}
	}
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	if n > 1 {
		if err := p.plan(ctx); err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	return p, nil
}

// entryParts are the parts of one stream: part 0 holds the sequences up
// to first+size, part k those in (first+k·size, first+(k+1)·size], the
// last everything above. The open ends keep every stored value in some
// part, a tampered one (text sorts above every number) included.
type entryParts struct {
	stream             string
	conns              []*sql.Conn
	first, size, parts int64
}

// A part spans partSize sequences, or fewer in a stream of fewer than 64
// parts, which is split too (tests, whose trails are small, read parts);
// maxParts bounds the empty parts a sparse, tampered sequence range could
// make (each costs a query of two index lookups). Beyond maxParts·partSize entries
// (16M) parts grow, and a reader waits longer for the one before it (a
// reader can get ahead of the one before it by what the caller buffers).
const (
	partSize = 2048
	maxParts = 8192
)

// plan cuts the stored sequence range into parts.
func (p *entryParts) plan(ctx context.Context) error {
	var lo, hi any
	var nulls int64
	// One aggregate a (sub)query: SQLite finds a min or a max alone in the
	// index, both together by reading every entry.
	err := p.conns[0].QueryRowContext(ctx, `SELECT
		(SELECT min(v) FROM (SELECT min(sequence) AS v FROM events WHERE stream = ?1 UNION ALL SELECT min(sequence) FROM dead_letters WHERE stream = ?1)),
		(SELECT max(v) FROM (SELECT max(sequence) AS v FROM events WHERE stream = ?1 UNION ALL SELECT max(sequence) FROM dead_letters WHERE stream = ?1)),
		(SELECT count(*) FROM events WHERE stream = ?1 AND sequence IS NULL) + (SELECT count(*) FROM dead_letters WHERE stream = ?1 AND sequence IS NULL)`, p.stream).
		Scan(&lo, &hi, &nulls)
	if err != nil {
		return fmt.Errorf("sqlitestore: range of stream %q: %w", p.stream, err)
	}
	if nulls > 0 {
		// No part would hold them; EachEntry fails on them too.
		return fmt.Errorf("sqlitestore: read stream %q: %d entries without a sequence", p.stream, nulls)
	}
	first, ok1 := lo.(int64)
	last, ok2 := hi.(int64)
	if !ok1 || !ok2 || last <= first {
		return nil // empty, or values that are not integers: one part, as EachEntry reads
	}
	span := uint64(last - first) // cannot overflow: last > first
	p.first = first - 1
	p.size = int64(max(min(partSize, span/64+1), span/maxParts+1))
	p.parts = int64(span/uint64(p.size)) + 1
	return nil
}

func (p *entryParts) Readers() int { return len(p.conns) }

func (p *entryParts) Each(ctx context.Context, r int, fn func(part int64, e *store.StoredEntry) error) error {
	return withEntryReader(ctx, p.conns[r], func(er *entryReader) error {
		for part := int64(r); part < p.parts; part += int64(len(p.conns)) {
			var lo, hi *int64
			if part > 0 {
				lo = new(p.first + part*p.size)
			}
			if part < p.parts-1 {
				hi = new(p.first + (part+1)*p.size)
			}
			if err := er.read(p.stream, lo, hi, func(e *store.StoredEntry) error { return fn(part, e) }); err != nil {
				return err
			}
			if err := fn(part, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func (p *entryParts) Close() error {
	var first error
	for _, c := range p.conns {
		if err := endRead(context.Background(), c); err != nil && first == nil {
			first = err
		}
	}
	p.conns = nil
	return first
}

// beginRead takes a connection and begins a read transaction on it. BEGIN
// is issued as a statement: the pool's transactions begin IMMEDIATE (see
// Open), which would take the write lock.
func (s *Store) beginRead(ctx context.Context) (*sql.Conn, error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	if _, err := c.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("sqlitestore: begin read: %w", err)
	}
	return c, nil
}

// endRead ends a transaction that wrote nothing and returns the connection.
func endRead(ctx context.Context, c *sql.Conn) error {
	defer c.Close()
	if _, err := c.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); err != nil {
		// Never hand a connection still in a transaction back to the pool.
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("sqlitestore: end read: %w", err)
	}
	return nil
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

// eventPacked and deadPacked read an entry row's columns besides sequence
// and document as one JSON array: kind, event id and hash, then an event's
// search columns. One column of the driver instead of fifteen: each costs
// it several calls into SQLite, each under the connection's mutex, which
// was most of the cost of reading a row. JSON would take a BLOB for JSONB
// (X'276231' reads as "b1") or refuse it, so a row with a BLOB or NULL
// column (the comparison with the empty BLOB fails: every other value
// sorts below it) is written as {"hex": [...]} instead, a TEXT column as
// the hex of its bytes, a BLOB as {"blob": HEX}.
var (
	eventPacked = packColumns(append([]string{`'event'`, "id", "hash"}, columnNames...))
	deadPacked  = packColumns([]string{"kind", "event_id", "doc_hash"})
)

func packColumns(cols []string) string {
	hexed := make([]string, len(cols))
	for i, c := range cols {
		hexed[i] = fmt.Sprintf(`CASE typeof(%[1]s) WHEN 'text' THEN hex(%[1]s) WHEN 'blob' THEN json_object('blob', hex(%[1]s)) ELSE %[1]s END`, c)
	}
	list := strings.Join(cols, ", ")
	return fmt.Sprintf(`CASE WHEN max(%[1]s) < x'' THEN json_array(%[1]s) ELSE json_object('hex', json_array(%[2]s)) END`,
		list, strings.Join(hexed, ", "))
}

// splitPacked reads eventPacked's or deadPacked's value: its first three
// values (kind, id, hash) into head, as Scan would read their columns, and
// returns the rest, the search columns, as the JSON text after the third
// value (tail, "" when there is none) or, in the hex form, decoded (vals,
// non-nil).
func splitPacked(packed string, head [3]*string) (tail string, vals []any, err error) {
	if strings.HasPrefix(packed, "{") {
		all, err := unpackHexed(packed)
		if err == nil && len(all) < len(head) {
			err = fmt.Errorf("%d values", len(all))
		}
		for k, dst := range head {
			if err == nil {
				err = scan(dst, all[k])
			}
		}
		if err != nil {
			return "", nil, err
		}
		return "", all[len(head):], nil // not nil, even when empty
	}
	if len(packed) < 2 || packed[0] != '[' || packed[len(packed)-1] != ']' {
		return "", nil, errNotArray
	}
	i := 1
	for k, dst := range head {
		if k > 0 {
			if packed[i] != ',' {
				return "", nil, errNotArray
			}
			i++
		}
		var v string
		var isNumber bool
		if v, isNumber, i, err = nextValue(packed, i); err != nil {
			return "", nil, err
		}
		if *dst = v; isNumber {
			if err := scan(dst, number(v)); err != nil {
				return "", nil, err
			}
		}
	}
	switch {
	case i == len(packed)-1:
		return "", nil, nil
	case packed[i] == ',':
		return packed[i+1:], nil, nil
	}
	return "", nil, errNotArray
}

// checkColumns compares the stored search columns with the ones derived
// from the stored document's event: tail, the JSON text that follows the
// array's first values (splitPacked), or stored, what the hex form decoded
// to. When tail is what SQLite writes for the derived values, every column
// holds its value (JSON text decodes to one value, and a string, an
// integer and a real are written differently); otherwise it is decoded
// back into the columns' values and compared one by one, so the outcome is
// that of comparing the columns themselves (TestPackedColumnsMatchColumns).
func checkColumns(ev *auditevent.Event, tail string, stored []any) []string {
	if stored == nil {
		var buf [1024]byte
		if string(appendPacked(buf[:0], searchValuesOf(ev))) == tail {
			return nil
		}
		var err error
		if stored, err = unpackArray("[" + tail); err != nil {
			return []string{fmt.Sprintf("the search columns cannot be read (%v): [%s", err, tail)}
		}
	}
	if len(stored) != len(columnNames) {
		return []string{fmt.Sprintf("the search columns cannot be read: %d values for %d columns", len(stored), len(columnNames))}
	}
	want := appendSearchColumns(make([]any, 0, len(columnNames)), ev)
	var out []string
	for i, w := range want {
		if !sameColumn(stored[i], w) {
			out = append(out, fmt.Sprintf("column %s is %q, the document says %q", columnNames[i], fmt.Sprint(stored[i]), fmt.Sprint(w)))
		}
	}
	return out
}

// appendPacked writes derived search columns as SQLite's json_array
// writes them after other values: without the opening bracket.
func appendPacked(dst []byte, v searchValues) []byte {
	dst = appendJSONString(dst, v.text[0])
	dst = strconv.AppendInt(append(dst, ','), v.time, 10)
	for _, t := range v.text[1:] {
		dst = appendJSONString(append(dst, ','), t)
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

var errNotArray = errors.New("not a JSON array of strings and numbers")

// unpackArray reads json_array's strings and numbers as the driver gives
// columns.
func unpackArray(s string) ([]any, error) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, errNotArray
	}
	var out []any
	for i := 1; i < len(s)-1; {
		if len(out) > 0 {
			if s[i] != ',' {
				return nil, errNotArray
			}
			i++
		}
		v, isNumber, next, err := nextValue(s, i)
		if err != nil {
			return nil, err
		}
		if i = next; isNumber {
			out = append(out, number(v))
		} else {
			out = append(out, v)
		}
	}
	return out, nil
}

// nextValue reads the string or number at s[i] of the JSON array s, byte
// for byte (encoding/json would replace bytes that are not UTF-8, which a
// TEXT column may hold): a string's value, or a number's text, and the
// index after it.
func nextValue(s string, i int) (v string, isNumber bool, next int, err error) {
	end := len(s) - 1 // the closing bracket
	if i >= end {
		return "", false, i, errNotArray
	}
	if s[i] != '"' {
		j := i
		for j < end && s[j] != ',' {
			j++
		}
		return s[i:j], true, j, nil
	}
	i++
	// Most strings have no escape: a substring, without a copy.
	if q := strings.IndexByte(s[i:end], '"'); q >= 0 && strings.IndexByte(s[i:i+q], '\\') < 0 {
		return s[i : i+q], false, i + q + 1, nil
	}
	var b []byte
	for {
		if i >= end {
			return "", false, i, errNotArray
		}
		c := s[i]
		if c == '"' {
			return string(b), false, i + 1, nil
		}
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", false, i, errNotArray
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
				return "", false, i, errNotArray
			}
			r, err := strconv.ParseUint(s[i+2:i+6], 16, 16)
			if err != nil {
				return "", false, i, errNotArray
			}
			b = utf8.AppendRune(b, rune(r))
			i += 4
		default:
			b = append(b, e)
		}
		i += 2
	}
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
// (what `runs` filters and sorts by) are compared with the summary. The
// summaries are decoded in parallel, in batches (decoding is most of the
// cost, and verification otherwise does it on one core after the streams);
// fn sees them in order, on the caller's goroutine.
func (s *Store) EachRunSummary(ctx context.Context, known func([]byte) *store.Run, fn func(*store.Run, []string) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT summary, `+runColumnNames+` FROM runs ORDER BY batch_id`)
	if err != nil {
		return fmt.Errorf("sqlitestore: read runs: %w", err)
	}
	defer rows.Close()
	type run struct {
		summary []byte
		stored  []any
		r       store.Run
		diffs   []string
		err     error
	}
	type batch struct {
		runs []run
		done chan struct{}
	}
	work, order := make(chan *batch, 8), make(chan *batch, 8)
	stop := make(chan struct{}) // ends the reader when fn fails
	var wg sync.WaitGroup
	// The workers end once the reader has (it closes work), before rows.Close.
	defer func() { close(stop); wg.Wait() }()
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for b := range work {
				for i := range b.runs {
					x := &b.runs[i]
					if x.err = store.DecodeSummary(x.summary, known, &x.r); x.err != nil {
						x.err = fmt.Errorf("sqlitestore: run %v summary: %w", x.stored[0], x.err)
						continue
					}
					for i, w := range runColumns(nil, &x.r) {
						if !sameColumn(x.stored[i], w) {
							x.diffs = append(x.diffs, fmt.Sprintf("column %s is %q, the summary says %q", runColumnList[i], fmt.Sprint(x.stored[i]), fmt.Sprint(w)))
						}
					}
				}
				close(b.done)
			}
		})
	}
	var readErr error
	go func() {
		defer close(work)
		defer close(order)
		for more := true; more; {
			b := &batch{done: make(chan struct{})}
			for more = rows.Next(); more; more = rows.Next() {
				x := run{stored: make([]any, len(runColumnList))}
				dst := []any{&x.summary}
				for i := range x.stored {
					dst = append(dst, &x.stored[i])
				}
				if readErr = rows.Scan(dst...); readErr != nil {
					readErr = fmt.Errorf("sqlitestore: read run: %w", readErr)
					more = false
					break
				}
				b.runs = append(b.runs, x)
				if len(b.runs) == 64 {
					break
				}
			}
			select {
			case order <- b:
			case <-stop:
				return
			}
			work <- b // the workers take every batch until work closes
		}
	}()
	for b := range order {
		<-b.done
		for i := range b.runs {
			x := &b.runs[i]
			if x.err != nil {
				return x.err
			}
			if err := fn(&x.r, x.diffs); err != nil {
				return err
			}
		}
	}
	if readErr != nil {
		return readErr
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

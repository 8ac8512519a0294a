package ingest

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"
)

// olDecoder fills an olEvent in one pass over the item, the way
// json.Unmarshal would, without its separate validity scan and reflection.
// It also notes whether the item has whitespace outside strings, so the
// caller knows without another scan whether json.Compact would change it.
//
// It declines (returns false) whatever it cannot decode exactly like
// encoding/json: syntax errors, type mismatches, duplicate or
// case-insensitively matched keys, very deep nesting. The caller then runs
// json.Unmarshal, which decides and words the error; FuzzOpenLineageDecoder
// checks that an accepted item decodes to what json.Unmarshal produces.
type olDecoder struct {
	r      reader
	spaced bool
	// strs interns short string values across the events of one request:
	// namespaces, dataset and job names repeat in every event. Nil
	// disables it.
	strs map[string]string
}

// decodeOpenLineage decodes raw into ol; ok is false when the caller must
// fall back to json.Unmarshal (ol is then partly filled).
func decodeOpenLineage(raw []byte, ol *olEvent) (spaced, ok bool) {
	d := olDecoder{r: reader{b: raw}}
	d.ws()
	if d.peek() != '{' || !d.event(ol) {
		return false, false
	}
	d.ws()
	return d.spaced, d.r.i == len(raw)
}

func (d *olDecoder) ws() {
	start := d.r.i
	d.r.ws()
	if d.r.i != start {
		d.spaced = true
	}
}

func (d *olDecoder) peek() byte {
	if d.r.i < len(d.r.b) {
		return d.r.b[d.r.i]
	}
	return 0
}

// null consumes a JSON null if one comes next.
func (d *olDecoder) null() bool {
	if d.peek() == 'n' && d.r.lit("null") == nil {
		return true
	}
	return false
}

// key reads an object key: the raw bytes when they need no decoding.
func (d *olDecoder) key() ([]byte, bool) {
	b := d.r.b
	for j := d.r.i + 1; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			k := b[d.r.i+1 : j]
			d.r.i = j + 1
			return k, true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
	}
	s, err := d.r.str()
	return []byte(s), err == nil
}

// object decodes an object whose known keys (exact spelling) go to member;
// other keys are skipped, as encoding/json skips unknown fields. The
// opening brace is next. Keys seen twice or matching a known key only
// case-insensitively make it decline: encoding/json merges or folds those.
func (d *olDecoder) object(known []string, member func(int) bool) bool {
	var seen uint32
	return d.members(func() bool {
		k, ok := d.key()
		if !ok || !d.colon() {
			return false
		}
		idx := -1
		for i, name := range known {
			if string(k) == name {
				idx = i
				break
			}
		}
		switch {
		case idx >= 0:
			if seen&(1<<idx) != 0 {
				return false
			}
			seen |= 1 << idx
			return member(idx)
		case foldsToAny(k, known):
			return false
		default:
			return d.skip()
		}
	})
}

// members decodes the members of an object (opening brace next); member
// reads one key (its opening quote next) and its value.
func (d *olDecoder) members(member func() bool) bool {
	d.r.i++ // {
	if d.r.depth++; d.r.depth > maxDepth {
		return false
	}
	d.ws()
	if d.peek() == '}' {
		d.r.i++
		d.r.depth--
		return true
	}
	for {
		d.ws()
		if d.peek() != '"' || !member() {
			return false
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.r.i++
		case '}':
			d.r.i++
			d.r.depth--
			return true
		default:
			return false
		}
	}
}

// colon consumes the ':' between a key and its value, and the whitespace
// around it.
func (d *olDecoder) colon() bool {
	d.ws()
	if d.peek() != ':' {
		return false
	}
	d.r.i++
	d.ws()
	return true
}

// foldsToAny reports whether encoding/json might match k to one of the
// known (ASCII) field names case-insensitively. Its folding maps some
// non-ASCII runes onto ASCII letters (K, ſ, ı), so any non-ASCII key counts.
func foldsToAny(k []byte, known []string) bool {
	if len(known) == 0 {
		return false
	}
	if !isASCII(k) {
		return true
	}
	for _, name := range known {
		if len(k) == len(name) && strings.EqualFold(string(k), name) {
			return true
		}
	}
	return false
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// array decodes the elements of an array (opening bracket next); elem
// decodes one element with whitespace already skipped.
func (d *olDecoder) array(elem func() bool) bool {
	d.r.i++ // [
	if d.r.depth++; d.r.depth > maxDepth {
		return false
	}
	d.ws()
	if d.peek() == ']' {
		d.r.i++
		d.r.depth--
		return true
	}
	for {
		d.ws()
		if !elem() {
			return false
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.r.i++
		case ']':
			d.r.i++
			d.r.depth--
			return true
		default:
			return false
		}
	}
}

// skip validates and skips one value, strictly (unlike reader's skip mode,
// which leaves escapes to the decoding pass).
func (d *olDecoder) skip() bool {
	switch c := d.peek(); {
	case c == '{':
		return d.object(nil, nil)
	case c == '[':
		return d.array(d.skip)
	case c == '"':
		return d.skipString()
	case c == 't':
		return d.r.lit("true") == nil
	case c == 'f':
		return d.r.lit("false") == nil
	case c == 'n':
		return d.r.lit("null") == nil
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.r.number(true)
		return err == nil
	}
	return false
}

func (d *olDecoder) skipString() bool {
	b := d.r.b
	for i := d.r.i + 1; ; {
		i = stringStop(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"':
			d.r.i = i + 1
			return true
		case '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				d.r.i = i + 2
				if _, ok := d.r.hex4(); !ok {
					return false
				}
				i = d.r.i
			default:
				return false
			}
		default:
			return false // a control character
		}
	}
}

// stringStop returns the index of the first '"', '\\' or control byte in
// b[i:], or len(b). It tests eight bytes at a time: facet strings (URLs,
// SQL, schemas) are most of an OpenLineage event's bytes.
func stringStop(b []byte, i int) int {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, s := x^(lsb*'"'), x^(lsb*'\\')
		if ((q-lsb)&^q|(s-lsb)&^s|(x-lsb*0x20)&^x)&msb != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}

// str decodes a string member; null leaves dst unchanged, as encoding/json does.
func (d *olDecoder) str(dst *string) bool {
	switch d.peek() {
	case '"':
		if d.strs != nil && d.internedStr(dst) {
			return true
		}
		s, err := d.r.str()
		*dst = s
		return err == nil
	case 'n':
		return d.null()
	}
	return false
}

// internedStr reads a short plain (ASCII, unescaped) string through strs;
// false leaves the string to reader.str.
func (d *olDecoder) internedStr(dst *string) bool {
	b, start := d.r.b, d.r.i+1
	for j := start; j < len(b) && j-start <= maxInternedLen; j++ {
		c := b[j]
		if c == '"' {
			s, ok := d.strs[string(b[start:j])]
			if !ok {
				s = string(b[start:j])
				if len(d.strs) < maxInterned {
					d.strs[s] = s
				}
			}
			*dst = s
			d.r.i = j + 1
			return true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return false
}

func (d *olDecoder) int64Ptr(dst **int64) bool {
	if d.null() {
		*dst = nil
		return true
	}
	if c := d.peek(); c != '-' && (c < '0' || c > '9') {
		return false
	}
	start := d.r.i
	if _, err := d.r.number(true); err != nil {
		return false
	}
	n, err := strconv.ParseInt(string(d.r.b[start:d.r.i]), 10, 64)
	if err != nil {
		return false // a fraction, exponent or overflow: encoding/json rejects it
	}
	*dst = &n
	return true
}

func (d *olDecoder) boolPtr(dst **bool) bool {
	var v bool
	switch d.peek() {
	case 'n':
		if d.null() {
			*dst = nil
			return true
		}
		return false
	case 't':
		v = true
		if d.r.lit("true") != nil {
			return false
		}
	case 'f':
		if d.r.lit("false") != nil {
			return false
		}
	default:
		return false
	}
	*dst = &v
	return true
}

// structValue decodes an object into a non-pointer struct: null leaves it
// unchanged.
func (d *olDecoder) structValue(known []string, member func(int) bool) bool {
	switch d.peek() {
	case '{':
		return d.object(known, member)
	case 'n':
		return d.null()
	}
	return false
}

var (
	olEventKeys        = []string{"eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs", "dataset"}
	olRunKeys          = []string{"runId", "facets"}
	olRunFacetKeys     = []string{"parent", "errorMessage", "nominalTime"}
	olNominalKeys      = []string{"nominalStartTime"}
	olParentKeys       = []string{"run", "job", "root"}
	olRunIDKeys        = []string{"runId"}
	olJobKeys          = []string{"namespace", "name"}
	olErrorKeys        = []string{"message", "programmingLanguage", "stackTrace"}
	olDatasetKeys      = []string{"namespace", "name", "facets", "inputFacets", "outputFacets"}
	olDatasetFacetKeys = []string{"columnLineage", "dataQualityMetrics"}
	olInputFacetKeys   = []string{"dataQualityMetrics", "inputStatistics"}
	olOutputFacetKeys  = []string{"outputStatistics"}
	olRowCountKeys     = []string{"rowCount", "size"}
	olColumnKeys       = []string{"fields", "dataset"}
	olFieldKeys        = []string{"inputFields"}
	olInputFieldKeys   = []string{"namespace", "name", "field", "transformations"}
	olTransformKeys    = []string{"type", "subtype", "description", "masking"}
)

func (d *olDecoder) event(ol *olEvent) bool {
	return d.object(olEventKeys, func(k int) bool {
		switch k {
		case 0:
			return d.str(&ol.EventType)
		case 1:
			return d.str(&ol.EventTime)
		case 2:
			return d.str(&ol.Producer)
		case 3:
			return d.str(&ol.SchemaURL)
		case 4:
			return d.run(&ol.Run)
		case 5:
			return d.jobPtr(&ol.Job)
		case 6:
			return d.datasets(&ol.Inputs)
		case 7:
			return d.datasets(&ol.Outputs)
		default:
			if d.null() {
				ol.Dataset = nil
				return true
			}
			if d.peek() != '{' {
				return false
			}
			ol.Dataset = new(olDataset)
			return d.dataset(ol.Dataset)
		}
	})
}

func (d *olDecoder) run(dst **olRun) bool {
	if d.null() {
		*dst = nil
		return true
	}
	if d.peek() != '{' {
		return false
	}
	run := new(olRun)
	*dst = run
	return d.object(olRunKeys, func(k int) bool {
		if k == 0 {
			return d.str(&run.RunID)
		}
		return d.structValue(olRunFacetKeys, func(k int) bool {
			if k == 0 {
				if d.null() {
					run.Facets.Parent = nil
					return true
				}
				if d.peek() != '{' {
					return false
				}
				p := new(olParent)
				run.Facets.Parent = p
				return d.object(olParentKeys, func(k int) bool {
					if k == 2 {
						if d.null() {
							p.Root = nil
							return true
						}
						if d.peek() != '{' {
							return false
						}
						p.Root = new(olRunRef)
						return d.runRef(p.Root)
					}
					return d.runRefMember(&p.olRunRef, k)
				})
			}
			if k == 2 {
				if d.null() {
					run.Facets.NominalTime = nil
					return true
				}
				if d.peek() != '{' {
					return false
				}
				nt := newOf(run.Facets.NominalTime)
				run.Facets.NominalTime = nt
				return d.object(olNominalKeys, func(int) bool { return d.str(&nt.NominalStartTime) })
			}
			if d.null() {
				run.Facets.ErrorMessage = nil
				return true
			}
			if d.peek() != '{' {
				return false
			}
			em := newOf(run.Facets.ErrorMessage)
			run.Facets.ErrorMessage = em
			return d.object(olErrorKeys, func(k int) bool {
				switch k {
				case 0:
					return d.str(&em.Message)
				case 1:
					return d.str(&em.ProgrammingLanguage)
				}
				return d.str(&em.StackTrace)
			})
		})
	})
}

func (d *olDecoder) runRef(ref *olRunRef) bool {
	return d.object(olParentKeys[:2], func(k int) bool { return d.runRefMember(ref, k) })
}

// runRefMember decodes member k of olParentKeys (run or job) into ref.
func (d *olDecoder) runRefMember(ref *olRunRef, k int) bool {
	if k == 0 {
		return d.structValue(olRunIDKeys, func(int) bool { return d.str(&ref.Run.RunID) })
	}
	return d.structValue(olJobKeys, func(k int) bool { return d.jobMember(&ref.Job, k) })
}

func (d *olDecoder) jobMember(j *olJob, k int) bool {
	if k == 0 {
		return d.str(&j.Namespace)
	}
	return d.str(&j.Name)
}

func (d *olDecoder) jobPtr(dst **olJob) bool {
	if d.null() {
		*dst = nil
		return true
	}
	if d.peek() != '{' {
		return false
	}
	j := new(olJob)
	*dst = j
	return d.object(olJobKeys, func(k int) bool { return d.jobMember(j, k) })
}

// datasets decodes an array of datasets: null makes it nil, [] empty, and a
// null element a zero dataset, as in encoding/json.
func (d *olDecoder) datasets(dst *[]olDataset) bool {
	if d.null() {
		*dst = nil
		return true
	}
	if d.peek() != '[' {
		return false
	}
	out := []olDataset{}
	ok := d.array(func() bool {
		out = append(out, olDataset{})
		if d.null() {
			return true
		}
		return d.peek() == '{' && d.dataset(&out[len(out)-1])
	})
	*dst = out
	return ok
}

func (d *olDecoder) dataset(ds *olDataset) bool {
	return d.object(olDatasetKeys, func(k int) bool {
		switch k {
		case 0:
			return d.str(&ds.Namespace)
		case 1:
			return d.str(&ds.Name)
		case 2:
			return d.structValue(olDatasetFacetKeys, func(k int) bool {
				if k == 1 {
					return d.rowCount(&ds.Facets.DataQualityMetrics)
				}
				if d.null() {
					ds.Facets.ColumnLineage = nil
					return true
				}
				if d.peek() != '{' {
					return false
				}
				ds.Facets.ColumnLineage = new(olColumnLineage)
				return d.columnLineage(ds.Facets.ColumnLineage)
			})
		case 3:
			return d.structValue(olInputFacetKeys, func(k int) bool {
				if k == 0 {
					return d.rowCount(&ds.InputFacets.DataQualityMetrics)
				}
				return d.rowCount(&ds.InputFacets.InputStatistics)
			})
		}
		return d.structValue(olOutputFacetKeys, func(int) bool {
			return d.rowCount(&ds.OutputFacets.OutputStatistics)
		})
	})
}

func (d *olDecoder) rowCount(dst **olRowCount) bool {
	if d.null() {
		*dst = nil
		return true
	}
	if d.peek() != '{' {
		return false
	}
	rc := new(olRowCount)
	*dst = rc
	return d.object(olRowCountKeys, func(k int) bool {
		if k == 1 {
			return d.int64Ptr(&rc.Size)
		}
		return d.int64Ptr(&rc.RowCount)
	})
}

func (d *olDecoder) columnLineage(cl *olColumnLineage) bool {
	return d.object(olColumnKeys, func(k int) bool {
		if k == 1 {
			return d.inputFields(&cl.Dataset)
		}
		if d.null() {
			cl.Fields = nil
			return true
		}
		if d.peek() != '{' {
			return false
		}
		cl.Fields = emptyMap(cl.Fields)
		return d.fieldMap(cl)
	})
}

// fieldMap decodes columnLineage.fields: a map, so a repeated key keeps its
// last value, decoded from scratch, as in encoding/json.
func (d *olDecoder) fieldMap(cl *olColumnLineage) bool {
	return d.members(func() bool {
		name, err := d.r.str()
		if err != nil || !d.colon() {
			return false
		}
		fl := zeroElem(cl.Fields)
		if !d.structValue(olFieldKeys, func(int) bool { return d.inputFields(&fl.InputFields) }) {
			return false
		}
		cl.Fields[name] = fl
		return true
	})
}

func (d *olDecoder) inputFields(dst *[]olInputField) bool {
	if d.null() {
		*dst = nil
		return true
	}
	if d.peek() != '[' {
		return false
	}
	out := []olInputField{}
	ok := d.array(func() bool {
		out = append(out, olInputField{})
		f := &out[len(out)-1]
		return d.structValue(olInputFieldKeys, func(k int) bool {
			switch k {
			case 0:
				return d.str(&f.Namespace)
			case 1:
				return d.str(&f.Name)
			case 2:
				return d.str(&f.Field)
			}
			return d.transformations(f)
		})
	})
	*dst = out
	return ok
}

func (d *olDecoder) transformations(f *olInputField) bool {
	if d.null() {
		f.Transformations = nil
		return true
	}
	if d.peek() != '[' {
		return false
	}
	f.Transformations = emptySlice(f.Transformations)
	return d.array(func() bool {
		f.Transformations = append(f.Transformations, zeroElemOf(f.Transformations))
		t := &f.Transformations[len(f.Transformations)-1]
		return d.structValue(olTransformKeys, func(k int) bool {
			switch k {
			case 0:
				return d.str(&t.Type)
			case 1:
				return d.str(&t.Subtype)
			case 2:
				return d.str(&t.Description)
			}
			return d.boolPtr(&t.Masking)
		})
	})
}

// Type helpers for the anonymous structs of the ol types, kept anonymous so
// encoding/json's type errors read as before.
func newOf[T any](*T) *T                                { return new(T) }
func emptySlice[S ~[]E, E any](S) S                     { return S{} }
func zeroElemOf[S ~[]E, E any](S) (e E)                 { return }
func emptyMap[M ~map[K]V, K comparable, V any](M) M     { return M{} }
func zeroElem[M ~map[K]V, K comparable, V any](M) (v V) { return }

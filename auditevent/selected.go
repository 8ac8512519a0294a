package auditevent

import (
	"slices"
	"time"
	"unicode/utf8"
)

// Selection is a set of attribute keys that ParseSelected reads.
type Selection struct {
	keys  []string
	index map[string]int
	// str is the field of each key that holds a string (nil for others), so
	// a string value is stored without boxing it for Set.
	str []func(*Event) *string
}

// Select returns the selection of the given attribute keys (modelled keys
// or not; duplicates are harmless). A key of the run totals or of the
// change totals selects all of its group, since they fill one field.
func Select(keys ...string) Selection {
	s := Selection{index: make(map[string]int, len(keys))}
	add := func(k string) {
		if _, ok := s.index[k]; !ok {
			s.index[k] = len(s.keys)
			s.keys = append(s.keys, k)
			var ptr func(*Event) *string
			if slot, ok := slotIndex[k]; ok && slot.kind == kindStr {
				ptr = strFields[slot.i].ptr
			}
			s.str = append(s.str, ptr)
		}
	}
	for _, k := range keys {
		switch {
		case slices.Contains(counterKeys[:], k):
			for _, g := range counterKeys {
				add(g)
			}
		case slices.Contains(changeKeys[:], k):
			for _, g := range changeKeys {
				add(g)
			}
		default:
			add(k)
		}
	}
	return s
}

// Union is the selection of the keys of both.
func (s Selection) Union(o Selection) Selection {
	return Select(append(slices.Clone(s.keys), o.keys...)...)
}

// ParseSelected is ParseCanonical for a reader that needs only some
// attributes (verification needs a dozen of every stored event; building
// all of them was most of its cost): it reads name, time and the other
// top-level fields and the attributes in sel into *e, and validates the
// rest of the document without building it. Fields outside sel may or may
// not be set. It fails exactly when ParseCanonical fails, with its error:
// anything the selective pass declines (as fastDecode declines, or a
// document ParseCanonical refuses) is handed to ParseCanonical
// (FuzzParseSelected checks the fields agree).
func ParseSelected(doc []byte, sel Selection, e *Event) error {
	*e = Event{}
	if parseSelected(doc, sel, e) {
		return nil
	}
	var err error
	*e, err = ParseCanonical(doc)
	return err
}

// Top-level keys parseSelected tells apart; bit i of its seen mask.
const (
	topName = iota
	topTime
	topAttributes
	topOptional // + the index in optionalTop
)

// parseSelected fills a zero *e, or declines (leaving e to be reset).
func parseSelected(doc []byte, sel Selection, e *Event) bool {
	d := fastDecoder{b: doc}
	d.ws()
	if d.i >= len(doc) || doc[d.i] != '{' {
		return false
	}
	d.i++
	var (
		seen  uint
		top   [topOptional + len(optionalTop)]any
		attrs [8]attrValue // most selections fit without allocating
		kept  = attrs[:0]
	)
	d.ws()
	if d.i < len(doc) && doc[d.i] == '}' {
		d.i++
	} else {
		for {
			d.ws()
			k, ok := d.key()
			if !ok {
				return false
			}
			d.ws()
			if d.i >= len(doc) || doc[d.i] != ':' {
				return false
			}
			d.i++
			slot := -1
			switch string(k) {
			case "name":
				slot = topName
			case "time":
				slot = topTime
			case "attributes":
				slot = topAttributes
			default:
				for i, f := range optionalTop {
					if string(k) == f.key {
						slot = topOptional + i
					}
				}
			}
			switch {
			case slot < 0:
				// A top-level key ParseCanonical ignores.
				if !d.skip(1) {
					return false
				}
			case seen&(1<<slot) != 0:
				// A repeated key: the map ParseCanonical builds keeps the
				// last; rare enough to leave to it.
				return false
			case slot == topAttributes:
				if kept, ok = d.selectedAttributes(sel, kept, e); !ok {
					return false
				}
			default:
				if top[slot], ok = d.value(1); !ok {
					return false
				}
			}
			if slot >= 0 {
				seen |= 1 << slot
			}
			if end, ok := d.next('}'); !ok {
				return false
			} else if end {
				break
			}
		}
	}
	d.ws()
	if d.i != len(doc) || seen&(1<<topAttributes) == 0 {
		return false
	}
	// What ParseCanonical checks; it reports the errors.
	var ok bool
	if e.Name, ok = top[topName].(string); !ok {
		return false
	}
	ts, _ := top[topTime].(string)
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return false
	}
	if !t.Equal(time.Time{}) {
		e.Time = t.UTC()
	}
	for i, f := range optionalTop {
		if seen&(1<<(topOptional+i)) != 0 {
			if *f.ptr(e), ok = top[topOptional+i].(string); !ok {
				return false
			}
		}
	}
	for _, a := range kept {
		e.Set(sel.keys[a.key], a.v)
	}
	return true
}

// attrValue is a selected attribute: its index in the selection, its value.
type attrValue struct {
	key int
	v   any
}

// selectedAttributes reads the attributes object, keeping the values of the
// selected keys (the last of a repeated key, as a map would) and validating
// the others. A string for a string field is stored in e right away (Set
// would store it alike); a later value of its key overwrites it.
func (d *fastDecoder) selectedAttributes(sel Selection, kept []attrValue, e *Event) ([]attrValue, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, false
	}
	d.i++
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return kept, true
	}
	for {
		d.ws()
		k, ok := d.key()
		if !ok {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		if i, want := sel.index[string(k)]; want {
			d.ws()
			j := slices.IndexFunc(kept, func(a attrValue) bool { return a.key == i })
			if ptr := sel.str[i]; ptr != nil && d.i < len(d.b) && d.b[d.i] == '"' {
				if *ptr(e), ok = d.str(); !ok {
					return nil, false
				}
				if j >= 0 {
					kept = slices.Delete(kept, j, j+1) // an earlier value of another type
				}
			} else {
				v, ok := d.value(2)
				if !ok {
					return nil, false
				}
				if j < 0 {
					kept = append(kept, attrValue{i, v})
				} else {
					kept[j].v = v
				}
			}
		} else if !d.skip(2) {
			return nil, false
		}
		if end, ok := d.next('}'); !ok || end {
			return kept, ok
		}
	}
}

// key reads an object key as str does, without copying one that has no
// escapes.
func (d *fastDecoder) key() ([]byte, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for i := start; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			raw := d.b[start:i]
			if !ascii && !utf8.Valid(raw) {
				return nil, false
			}
			d.i = i + 1
			return raw, true
		case c == '\\':
			s, ok := d.str()
			return []byte(s), ok
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

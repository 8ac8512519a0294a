package auditevent

import (
	"slices"
	"time"
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
// (FuzzParseSelected checks the fields agree). Strings of *e may share
// doc's memory: doc must not change while *e is in use.
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
	d := fastDecoder{b: doc, shared: true}
	var (
		seen  uint
		top   [topOptional + len(optionalTop)]any
		attrs [8]attrValue // most selections fit without allocating
		kept  = attrs[:0]
	)
	d.ws()
	ok := d.object(func(k []byte) bool {
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
		var ok bool
		switch {
		case slot < 0:
			// A top-level key ParseCanonical ignores.
			return d.skip(1)
		case seen&(1<<slot) != 0:
			// A repeated key: the map ParseCanonical builds keeps the
			// last; rare enough to leave to it.
			return false
		case slot == topAttributes:
			d.ws()
			kept, ok = d.selectedAttributes(sel, kept, e)
		default:
			top[slot], ok = d.value(1)
		}
		seen |= 1 << slot
		return ok
	})
	if !ok {
		return false
	}
	d.ws()
	if d.i != len(doc) || seen&(1<<topAttributes) == 0 {
		return false
	}
	// What ParseCanonical checks; it reports the errors.
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
	ok := d.object(func(k []byte) bool {
		i, want := sel.index[string(k)]
		if !want {
			return d.skip(2)
		}
		d.ws()
		j := slices.IndexFunc(kept, func(a attrValue) bool { return a.key == i })
		if ptr := sel.str[i]; ptr != nil && d.i < len(d.b) && d.b[d.i] == '"' {
			var ok bool
			if *ptr(e), ok = d.str(); ok && j >= 0 {
				kept = slices.Delete(kept, j, j+1) // an earlier value of another type
			}
			return ok
		}
		v, ok := d.value(2)
		if j < 0 {
			kept = append(kept, attrValue{i, v})
		} else {
			kept[j].v = v
		}
		return ok
	})
	return kept, ok
}

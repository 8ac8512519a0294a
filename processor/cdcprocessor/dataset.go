package cdcprocessor

import (
	"path"
	"slices"
	"sync"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// dataset is a DatasetConfig prepared for use.
type dataset struct {
	cfg      DatasetConfig
	role     string
	hash     map[string]bool // fields pseudonymized by HMAC-SHA256
	drop     map[string]bool // fields removed
	redacts  bool
	redactor []byte // redaction_key
}

func newDataset(c DatasetConfig, redactionKey []byte) *dataset {
	d := &dataset{cfg: c, role: c.Role, hash: map[string]bool{}, drop: map[string]bool{}, redactor: redactionKey}
	if d.role == "" {
		d.role = RoleTarget
	}
	for _, f := range c.Redact.Hash {
		d.hash[f] = true
	}
	for _, f := range c.Redact.Drop {
		d.drop[f] = true
	}
	d.redacts = len(d.hash)+len(d.drop) > 0
	return d
}

func (d *dataset) projects() bool { return len(d.cfg.IncludeFields)+len(d.cfg.IgnoreFields) > 0 }

func (d *dataset) project(rec map[string]any) map[string]any {
	return canonical.Project(rec, d.cfg.IncludeFields, d.cfg.IgnoreFields)
}

// redact returns rec with the dataset's redaction applied (a copy when
// anything changes; rec itself is never modified).
func (d *dataset) redact(rec map[string]any) map[string]any {
	if !d.redacts || rec == nil {
		return rec
	}
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		switch {
		case d.drop[k]:
		case d.hash[k]:
			out[k] = d.pseudonym(v)
		default:
			out[k] = v
		}
	}
	return out
}

// pseudonym is canonical.Pseudonym under redaction_key: equal values give
// equal pseudonyms (joins and counts still work), values cannot be
// recovered without the key. A value the receiver pseudonymized already
// (its pseudonymize option, with the same key) is kept as it is.
func (d *dataset) pseudonym(v any) any { return canonical.Pseudonymize(d.redactor, v) }

// matcher finds the dataset configuration of an event's dataset. Results
// are cached per (role, namespace, name); the cache is bounded because a
// job can name arbitrarily many datasets.
type matcher struct {
	sets  []*dataset
	mu    sync.Mutex
	cache map[[3]string]matched
}

// matched is a match result with the state id of the concrete dataset.
type matched struct {
	d  *dataset
	id string
}

const matcherCacheMax = 10000

func newMatcher(cfg *Config) *matcher {
	m := &matcher{cache: map[[3]string]matched{}}
	for _, c := range cfg.Datasets {
		m.sets = append(m.sets, newDataset(c, []byte(cfg.RedactionKey)))
	}
	return m
}

func (m *matcher) match(role, namespace, name string) *dataset {
	d, _ := m.lookup(role, namespace, name)
	return d
}

// lookup returns the dataset configuration and the state id of the dataset.
func (m *matcher) lookup(role, namespace, name string) (*dataset, string) {
	if name == "" {
		return nil, ""
	}
	k := [3]string{role, namespace, name}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.cache[k]; ok {
		return r.d, r.id
	}
	var found *dataset
	for _, d := range m.sets {
		if d.role != role {
			continue
		}
		if ok, _ := path.Match(d.cfg.Name, name); !ok {
			continue
		}
		if d.cfg.Namespace != "" {
			if ok, _ := path.Match(d.cfg.Namespace, namespace); !ok {
				continue
			}
		}
		found = d
		break
	}
	if len(m.cache) >= matcherCacheMax {
		clear(m.cache)
	}
	r := matched{d: found}
	if found != nil {
		r.id = state.DatasetID(role, namespace, name)
	}
	m.cache[k] = r
	return r.d, r.id
}

// lastMatch remembers the last lookup of a collect: the events of an
// incoming batch usually name one dataset, and this saves the shared cache's
// lock and hashing per event.
type lastMatch struct {
	ok                    bool
	role, namespace, name string
	d                     *dataset
	id                    string
}

func (l *lastMatch) lookup(m *matcher, role, namespace, name string) (*dataset, string) {
	if l.ok && name == l.name && namespace == l.namespace && role == l.role {
		return l.d, l.id
	}
	d, id := m.lookup(role, namespace, name)
	*l = lastMatch{ok: true, role: role, namespace: namespace, name: name, d: d, id: id}
	return d, id
}

// hasRole reports whether any dataset has role r (so events of the other
// role are skipped without parsing).
func (m *matcher) hasRole(r string) bool {
	for _, d := range m.sets {
		if d.role == r {
			return true
		}
	}
	return false
}

// compares reports whether field k is part of the compared record (see
// canonical.Project).
func (d *dataset) compares(k string) bool {
	if len(d.cfg.IncludeFields) > 0 && !slices.Contains(d.cfg.IncludeFields, k) {
		return false
	}
	return !slices.Contains(d.cfg.IgnoreFields, k)
}

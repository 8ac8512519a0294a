package auditevent

import "strings"

// String returns the dataset's id: the URI its namespace and name combine to
// under OpenLineage dataset naming (scheme:[//authority]path). A namespace
// with an authority is joined with "/" (postgres://db:5432/sales.orders,
// s3://bucket/key, hdfs://nn:8020/warehouse/t for the name /warehouse/t); a
// namespace that is a scheme alone is joined with ":" (file:/data/orders.csv
// for namespace file and name /data/orders.csv, bigquery:p.d.t). Without a
// namespace it is the name, without a name the namespace.
func (d Dataset) String() string {
	switch {
	case d.Namespace == "":
		return d.Name
	case d.Name == "":
		return d.Namespace
	case strings.Contains(d.Namespace, "://"):
		ns := strings.TrimRight(d.Namespace, "/")
		if strings.HasPrefix(d.Name, "/") {
			return ns + d.Name
		}
		return ns + "/" + d.Name
	default:
		return d.Namespace + ":" + d.Name
	}
}

// ParseDataset is the inverse of Dataset.String: "scheme://authority/name"
// splits after the authority, "scheme:name" at the colon, and anything else
// is a bare name. The one loss: a name that began with "/" after an
// authority comes back without it.
func ParseDataset(s string) Dataset {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return Dataset{Namespace: s}
		}
		return Dataset{Namespace: s[:i+3+j], Name: rest[j+1:]}
	}
	if i := strings.IndexByte(s, ':'); i > 1 && isScheme(s[:i]) && i+1 < len(s) {
		return Dataset{Namespace: s[:i], Name: s[i+1:]}
	}
	return Dataset{Name: s}
}

// isScheme reports whether s is a URI scheme (RFC 3986: a letter, then
// letters, digits, "+", "-" or ".").
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

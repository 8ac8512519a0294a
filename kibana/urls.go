package kibana

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// RecordHistoryURL returns the Kibana URL that opens the saved search
// "Record history" for one record id, over all time.
func RecordHistoryURL(kibanaURL, space, recordID string) (string, error) {
	return appURL(kibanaURL, space, "discover#/view/"+recordHistory.id,
		recordHistory.query.fill(map[string]string{RecordIDPlaceholder: recordID}))
}

// RunDetailURL returns the Kibana URL that opens the "Run detail" dashboard
// for one batch id, over all time.
func RunDetailURL(kibanaURL, space, batchID string) (string, error) {
	return appURL(kibanaURL, space, "dashboards#/view/"+runDetail.id,
		runDetail.query.fill(map[string]string{BatchIDPlaceholder: batchID}))
}

// spaceID is what Kibana accepts as a space identifier.
var spaceID = regexp.MustCompile(`^[a-z0-9_-]+$`)

// spacePath is the URL path prefix of a Kibana space: none for the default
// space.
func spacePath(space string) (string, error) {
	if space == "" || space == "default" {
		return "", nil
	}
	if !spaceID.MatchString(space) {
		return "", fmt.Errorf("space %q: a Kibana space id has only lowercase letters, digits, '_' and '-'", space)
	}
	return "/s/" + space, nil
}

// baseURL checks a Kibana URL given by the user and drops a trailing slash.
func baseURL(kibanaURL string) (string, error) {
	u, err := url.Parse(kibanaURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("kibana URL %q: want http(s)://host[:port][/base-path]", kibanaURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("kibana URL %q: must not have a query or fragment", kibanaURL)
	}
	return strings.TrimRight(kibanaURL, "/"), nil
}

// appURL builds <kibana>[/s/<space>]/app/<app>?_g=(time:...)&_a=(query:...):
// Kibana's URL state in rison, the global state with a time range over all
// time and the app state with the query, which replaces the saved one.
func appURL(kibanaURL, space, app string, q query) (string, error) {
	base, err := baseURL(kibanaURL)
	if err != nil {
		return "", err
	}
	sp, err := spacePath(space)
	if err != nil {
		return "", err
	}
	g := "(time:(from:" + risonString("1970-01-01T00:00:00.000Z") + ",to:now))"
	a := "(query:(language:lucene,query:" + risonString(q.lucene()) + "))"
	return base + sp + "/app/" + app + "?_g=" + escapeState(g) + "&_a=" + escapeState(a), nil
}

// risonString quotes s for rison: in '...', ! escapes ' and itself.
func risonString(s string) string {
	return "'" + strings.NewReplacer("!", "!!", "'", "!'").Replace(s) + "'"
}

// escapeState percent-encodes a rison value for the URL fragment, keeping
// rison's own characters readable (as Kibana's URLs do).
func escapeState(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~()',:!*@$/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

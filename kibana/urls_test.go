package kibana

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordHistoryURL(t *testing.T) {
	u, err := RecordHistoryURL("https://kibana.example:5601/", "", "A-1002")
	require.NoError(t, err)
	assert.Equal(t, "https://kibana.example:5601/app/discover#/view/batchaudit-search-record-history"+
		"?_g=(time:(from:'1970-01-01T00:00:00.000Z',to:now))"+
		"&_a=(query:(language:lucene,query:'batchaudit.record.id:%22A-1002%22'))", u)

	u, err = RunDetailURL("http://127.0.0.1:5601/base", "audit", "01a2022b-307a-7ae0")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:5601/base/s/audit/app/dashboards#/view/batchaudit-dashboard-run-detail"+
		"?_g=(time:(from:'1970-01-01T00:00:00.000Z',to:now))"+
		"&_a=(query:(language:lucene,query:'batchaudit.batch.id:%2201a2022b-307a-7ae0%22'))", u)
}

// TestURLQuoting: any record id survives Lucene, rison and URL quoting, so
// the query Kibana reads back is the phrase of exactly that id.
func TestURLQuoting(t *testing.T) {
	id := `O'Brien "quoted" \ 50% & done! #1`
	u, err := RecordHistoryURL("http://k:5601", "", id)
	require.NoError(t, err)
	_, frag, ok := strings.Cut(u, "#")
	require.True(t, ok)
	assert.NotContains(t, frag, " ")
	assert.NotContains(t, frag, `"`)
	assert.NotContains(t, frag, "#")
	_, a, ok := strings.Cut(frag, "&_a=")
	require.True(t, ok)
	decoded, err := url.PathUnescape(a)
	require.NoError(t, err)
	// Rison: '...' with !' for ' and !! for !; Lucene: \" and \\ inside the phrase.
	assert.Equal(t, `(query:(language:lucene,query:'batchaudit.record.id:"O!'Brien \"quoted\" \\ 50% & done!! #1"'))`, decoded)
	assert.Equal(t, `batchaudit.record.id:"O'Brien \"quoted\" \\ 50% & done! #1"`,
		where("batchaudit.record.id", id).lucene())
}

func TestURLErrors(t *testing.T) {
	for _, base := range []string{"", "kibana:5601", "file:///x", "http://k:5601?a=b", "http://k:5601#x"} {
		_, err := RecordHistoryURL(base, "", "A-1")
		assert.Error(t, err, base)
	}
	_, err := RunDetailURL("http://k:5601", "Bad Space", "b")
	assert.Error(t, err)
}

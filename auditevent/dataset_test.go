package auditevent

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDatasetIDs(t *testing.T) {
	for _, c := range []struct {
		d    Dataset
		id   string
		back Dataset // what ParseDataset gives when it differs from d
	}{
		{d: Dataset{Namespace: "postgres://db:5432", Name: "sales.orders"}, id: "postgres://db:5432/sales.orders"},
		{d: Dataset{Namespace: "s3://bucket", Name: "dw/fact_orders"}, id: "s3://bucket/dw/fact_orders"},
		{d: Dataset{Namespace: "file", Name: "/data/orders.csv"}, id: "file:/data/orders.csv"},
		{d: Dataset{Namespace: "bigquery", Name: "proj.ds.table"}, id: "bigquery:proj.ds.table"},
		{d: Dataset{Namespace: "file://host", Name: "/data/x"}, id: "file://host/data/x", back: Dataset{Namespace: "file://host", Name: "data/x"}},
		{d: Dataset{Namespace: "kafka://broker:9092"}, id: "kafka://broker:9092"},
		{d: Dataset{Name: "orders_clean"}, id: "orders_clean"},
		{d: Dataset{Name: "C:\\data\\x.csv"}, id: "C:\\data\\x.csv"},
	} {
		assert.Equal(t, c.id, c.d.String())
		want := c.d
		if !c.back.IsZero() {
			want = c.back
		}
		assert.Equal(t, want, ParseDataset(c.id), c.id)
		assert.Equal(t, c.id, ParseDataset(c.id).String(), "the id survives a round trip")
	}
}

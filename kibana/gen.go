//go:build ignore

// gen writes batchaudit.ndjson, the saved objects for the default index
// prefix (go generate ./kibana). TestCommittedNDJSONIsCurrent fails when the
// committed file differs from what the Go definitions produce.
package main

import (
	"log"
	"os"

	"github.com/batchaudit/batchaudit/kibana"
)

func main() {
	b, err := kibana.NDJSON(kibana.DefaultPrefix)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(kibana.CommittedFile, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

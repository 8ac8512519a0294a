// Package kibana holds batchaudit's Kibana 8.x saved objects for the audit
// trail in Elasticsearch: data views on the events, runs and dead-letter
// indices, saved searches, legacy visualizations and four dashboards.
//
// The objects are defined once, in Go (objects.go), and everything else is
// derived from that definition: the saved-objects NDJSON that Kibana's
// import API takes (NDJSON, committed as batchaudit.ndjson by go generate),
// the Elasticsearch requests that Kibana sends for each search and
// visualization (Requests, which the tests run against a real node), the
// Discover and dashboard URLs the CLI prints, and the import into Kibana
// (Import). README.md explains the objects and how the queries are proven.
package kibana

//go:generate go run gen.go

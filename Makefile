# batchaudit: build the collector distribution, run the demo, run every test.
SHELL        := /bin/bash
GO           ?= go
TOOLS        := -modfile=$(CURDIR)/internal/tools/go.mod
BUILD_DIR    := $(CURDIR)/_build
COLLECTOR    := $(BUILD_DIR)/otelcol-batchaudit
CLI          := $(BUILD_DIR)/batchaudit
ORDERSJOB    := $(BUILD_DIR)/ordersjob
DATA_DIR     ?= $(CURDIR)/batchaudit-data
FUZZTIME     ?= 5s
GO_SOURCES   := $(shell find . -name '*.go' -not -path './_build/*' -not -path './internal/tools/*') go.mod builder-config.yaml

.PHONY: all build run test test-unit test-e2e test-fuzz test-examples bench lint generate clean es-up es-down es-status es-reset kafka-up kafka-down kafka-status kafka-reset es-up-secure es-down-secure es-status-secure es-reset-secure help pyenv examples bench-e2e browser

all: build

help:
	@echo "make run      build the collector, start it, run the example job, show the audit trail"
	@echo "make test     run every test (unit, Elasticsearch integration, end-to-end, short fuzzing);"
	@echo "              starts a local Elasticsearch node and installs the Python test clients first"
	@echo "make build    build _build/otelcol-batchaudit, _build/batchaudit (CLI) and _build/ordersjob"
	@echo "make examples / test-examples   build the Java and Node examples / run the Python and Node unit tests"
	@echo "make es-up / es-down / es-status / es-reset   local Elasticsearch node for tests and runs (reset deletes its data)"
	@echo "make es-up-secure / es-down-secure / ...        the secured node (TLS, users, roles, API keys) on port 9201"
	@echo "make kafka-up / kafka-down / kafka-status / kafka-reset   local Kafka broker (KRaft) on 127.0.0.1:9092 (docs/scale-out.md)"
	@echo "make bench    run the benchmarks;  make lint;  make generate;  make clean"

build: $(COLLECTOR) $(CLI) $(ORDERSJOB)

# ocb generates a main module under _build/src and compiles it against this repo (replace ./).
$(COLLECTOR): $(GO_SOURCES)
	@mkdir -p $(BUILD_DIR)
	$(GO) tool $(TOOLS) builder --config=builder-config.yaml
	@$(COLLECTOR) --version

$(CLI): $(GO_SOURCES)
	$(GO) build -o $@ ./cmd/batchaudit

$(ORDERSJOB): $(GO_SOURCES)
	$(GO) build -o $@ ./examples/ordersjob

run: build
	@bash scripts/run-demo.sh

# `make test` brings up what the tests need: the local Elasticsearch nodes, plain and secured, and the
# Kafka broker (left running; `make es-down es-down-secure kafka-down` stops them), the Python clients of the end-to-end tests and the Python package in testbed/.venv,
# the Java and Node examples, and chromium and poppler-utils for the report tests.
test: build es-up es-up-secure kafka-up pyenv examples browser test-unit test-examples test-fuzz test-e2e

# The report tests load HTML in headless Chromium and read PDFs with poppler (Debian packages).
browser:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing; install them: apt-get install -y$$missing"; exit 1; fi; \
		echo "installing$$missing (apt-get)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing </dev/null >/dev/null; \
	fi

PYENV := $(CURDIR)/testbed/.venv
pyenv: $(PYENV)/.installed
$(PYENV)/.installed: testbed/python/requirements.txt python/pyproject.toml
	python3 -m venv $(PYENV)
	$(PYENV)/bin/pip install -q --disable-pip-version-check -r testbed/python/requirements.txt -e ./python
	@touch $@

# The Java and Node example jobs, built once; downloads are cached in ~/.m2 and ~/.npm.
# `mvn package` also runs the Java example's JUnit tests.
JAVA_EXAMPLE := examples/java/target/.built
NODE_EXAMPLE := examples/node/node_modules/.installed
examples: $(JAVA_EXAMPLE) $(NODE_EXAMPLE)
$(JAVA_EXAMPLE): examples/java/pom.xml $(shell find examples/java/src -name '*.java') canonical/testdata/vectors.json canonical/testdata/vectors.sha256
	mvn -B -q -f examples/java/pom.xml package
	@touch $@
$(NODE_EXAMPLE): examples/node/package-lock.json
	cd examples/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Unit tests of the Python package (pytest) and the Node example (node --test).
test-examples: pyenv examples
	cd python && $(PYENV)/bin/python -m pytest -q
	cd examples/node && npm test --silent

test-unit:
	BATCHAUDIT_COLLECTOR=$(COLLECTOR) $(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /testbed)

test-e2e: build pyenv examples
	@BATCHAUDIT_COLLECTOR=$(COLLECTOR) BATCHAUDIT_CLI=$(CLI) BATCHAUDIT_ORDERSJOB=$(ORDERSJOB) BATCHAUDIT_PYTHON=$(PYENV)/bin/python \
		$(GO) test -count=1 -timeout 30m -v ./testbed/... > $(BUILD_DIR)/e2e.log 2>&1; rc=$$?; \
		grep -E '^(--- |PASS|FAIL|ok )' $(BUILD_DIR)/e2e.log; \
		if [ $$rc -ne 0 ]; then echo "---- end-to-end log tail ($(BUILD_DIR)/e2e.log) ----"; tail -150 $(BUILD_DIR)/e2e.log; fi; exit $$rc

# Every Fuzz target runs briefly. A crash is saved under testdata/fuzz and so fails the retry too;
# a retry only absorbs the fuzzing engine's own hiccups (a worker it reports as hung on a loaded machine).
test-fuzz:
	@mkdir -p $(BUILD_DIR); set -e; for pkg in $$($(GO) list ./... | grep -v /testbed); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			if ! $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg > $(BUILD_DIR)/fuzz.log 2>&1; then \
				tail -20 $(BUILD_DIR)/fuzz.log; echo "retrying $$f"; \
				$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
			fi; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $$($(GO) list ./... | grep -v /testbed)

# End-to-end load through the built collector into SQLite and Elasticsearch: events/s and collector CPU.
bench-e2e: build es-up kafka-up
	BATCHAUDIT_COLLECTOR=$(COLLECTOR) BATCHAUDIT_ORDERSJOB=$(ORDERSJOB) \
		$(GO) test -run '^$$' -bench E2E -benchtime 1x -timeout 30m ./testbed/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# Regenerate internal/metadata of every component and the Kibana saved objects (output is committed).
generate:
	@for d in $$(dirname $$(find receiver processor exporter extension -name metadata.yaml)); do \
		echo "mdatagen $$d"; (cd $$d && $(GO) tool -modfile=$(CURDIR)/internal/tools/go.mod mdatagen metadata.yaml) || exit 1; \
	done
	$(GO) generate ./kibana

es-up:
	@bash scripts/es.sh up
es-down:
	@bash scripts/es.sh down
es-status:
	@bash scripts/es.sh status
es-reset:
	@bash scripts/es.sh reset
# The secured node (beside the default one): HTTPS, users, roles and API keys; see docs/elasticsearch.md.
es-up-secure:
	@BATCHAUDIT_ES_SECURE=1 bash scripts/es.sh up
es-down-secure:
	@BATCHAUDIT_ES_SECURE=1 bash scripts/es.sh down
es-status-secure:
	@BATCHAUDIT_ES_SECURE=1 bash scripts/es.sh status
es-reset-secure:
	@BATCHAUDIT_ES_SECURE=1 bash scripts/es.sh reset

# A single-node Kafka broker (KRaft, from Maven Central) for the scale-out topology and its tests.
kafka-up:
	@bash scripts/kafka.sh up
kafka-down:
	@bash scripts/kafka.sh down
kafka-status:
	@bash scripts/kafka.sh status
kafka-reset:
	@bash scripts/kafka.sh reset

clean:
	rm -rf $(BUILD_DIR) $(DATA_DIR) $(PYENV) examples/java/target examples/node/node_modules

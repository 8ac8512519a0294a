#!/usr/bin/env bash
# scripts/es.sh - run a real single-node Elasticsearch for tests and local runs.
#
#   scripts/es.sh up      download (once), start and wait for a yellow/green node
#   scripts/es.sh down    stop the node started by `up` (its data stays)
#   scripts/es.sh reset   stop the node and delete its data (indices, and with
#                         security its certificates, users and API keys)
#   scripts/es.sh status  print state, URL, version and health (exit 0 up, 1 down)
#   scripts/es.sh env     print the secured node's connection settings (see below)
#
# The node is Elastic's "integ-test-zip" distribution from Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip),
# fetched with Maven so that mirrors/proxies from ~/.m2/settings.xml apply.
# It is a real Elasticsearch server with only a few modules (see
# docs/elasticsearch.md), run on the system JDK 17.
#
# With BATCHAUDIT_ES_SECURE=1 the node runs with security on, beside the
# default one: HTTPS with a CA made here with openssl, the bootstrap superuser
# `elastic`, the roles of store/esstore/roles/*.json, the users
# batchaudit-{writer,reader,admin} and an API key each for the writer and the
# reader. API keys need a small test-only analysis plugin, compiled here from
# scripts/es-test-analysis/ with the JDK (docs/elasticsearch.md says why).
# The connection settings go to $BATCHAUDIT_CACHE/es/secure-<port>.env
# (shell syntax; `scripts/es.sh env` prints them).
#
# Environment:
#   BATCHAUDIT_ES_VERSION  Elasticsearch version           (default 8.19.7)
#   BATCHAUDIT_ES_SECURE   1: security on (TLS, users)     (default 0)
#   BATCHAUDIT_ES_PORT     HTTP port on 127.0.0.1          (default 9200, secure 9201)
#   BATCHAUDIT_CACHE       cache root outside the repo     (default ~/.cache/batchaudit)
#   BATCHAUDIT_ES_TIMEOUT  seconds to wait for health      (default 180)
#
# Layout under $BATCHAUDIT_CACHE/es:
#   <version>/elasticsearch-<version>/   unpacked distribution (ES_HOME), reused
#   <version>/elasticsearch-<version>-secure/  hard-linked copy + test plugin
#   <version>/node-<port>/{config,data,logs,tmp}   data kept until `reset`
#   <version>/node-<port>/secure/        CA, node certificate, keystore, passwords
#   secure-<port>.env                    the secured node's URL, CA and credentials
#   run/es-<port>.pid                    pid of the running server process
#   run/es-<port>.home                   which node dir that pid belongs to
set -euo pipefail

ES_VERSION="${BATCHAUDIT_ES_VERSION:-8.19.7}"
SECURE="${BATCHAUDIT_ES_SECURE:-0}"
case "$SECURE" in 0 | 1) ;; *) echo "es.sh: ERROR: BATCHAUDIT_ES_SECURE must be 0 or 1" >&2; exit 2 ;; esac
if [ "$SECURE" = 1 ]; then ES_PORT="${BATCHAUDIT_ES_PORT:-9201}"; else ES_PORT="${BATCHAUDIT_ES_PORT:-9200}"; fi
CACHE_ROOT="${BATCHAUDIT_CACHE:-${HOME:-/root}/.cache/batchaudit}"
TIMEOUT="${BATCHAUDIT_ES_TIMEOUT:-180}"
ES_USER_NAME="batchaudit-es"
CLUSTER_NAME="batchaudit-test"

ES_ROOT="$CACHE_ROOT/es"
VERSION_DIR="$ES_ROOT/$ES_VERSION"
DIST_DIR="$VERSION_DIR/elasticsearch-$ES_VERSION"
ES_HOME_DIR="$DIST_DIR"
NODE_DIR="$VERSION_DIR/node-$ES_PORT"
RUN_DIR="$ES_ROOT/run"
PID_FILE="$RUN_DIR/es-$ES_PORT.pid"
HOME_FILE="$RUN_DIR/es-$ES_PORT.home"
URL="http://127.0.0.1:$ES_PORT"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
if [ "$SECURE" = 1 ]; then
	# Plugins live in ES_HOME/plugins only, so the secured node runs from its own
	# copy of the distribution (hard links: no extra disk space).
	ES_HOME_DIR="$VERSION_DIR/elasticsearch-$ES_VERSION-secure"
	URL="https://127.0.0.1:$ES_PORT"
	SECRETS_DIR="$NODE_DIR/secure"
	ENV_FILE="$ES_ROOT/secure-$ES_PORT.env"
	PLUGIN_SRC="$SCRIPT_DIR/es-test-analysis/TestAnalysisPlugin.java"
	ROLES_DIR="$REPO_DIR/store/esstore/roles"
fi
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"

log() { printf 'es.sh: %s\n' "$*"; }
die() { printf 'es.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
	echo "usage: $0 up|down|reset|status|env   (BATCHAUDIT_ES_SECURE=1: the secured node)" >&2
	exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# run_as_es CMD... runs CMD as the node's user: the dedicated user when we are
# root (Elasticsearch refuses to run as root), else the current user.
run_as_es() {
	if is_root; then
		runuser -u "$ES_USER_NAME" -- "$@"
	else
		"$@"
	fi
}

# ---------------------------------------------------------------- prerequisites

ensure_tools() {
	local missing=()
	command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
	command -v mvn >/dev/null 2>&1 || missing+=(maven)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	command -v unzip >/dev/null 2>&1 || missing+=(unzip)
	if [ "$SECURE" = 1 ]; then
		# openssl makes the CA; javac compiles the test analysis plugin.
		command -v openssl >/dev/null 2>&1 || missing+=(openssl)
		command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
	fi
	[ "${#missing[@]}" -eq 0 ] && return 0
	if ! is_root; then
		die "missing tools: ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"
	fi
	log "installing missing packages: ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
}

# detect_java sets ES_JAVA_HOME from the `java` on PATH and checks it is 17+.
detect_java() {
	local java_bin major
	java_bin="$(readlink -f "$(command -v java)")"
	ES_JAVA_HOME="$(dirname "$(dirname "$java_bin")")"
	major="$("$java_bin" -XshowSettings:properties -version 2>&1 |
		sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')"
	[ -n "$major" ] || die "cannot determine the Java version of $java_bin"
	if [ "$major" -lt 17 ]; then
		die "Elasticsearch $ES_VERSION needs Java 17+, but $java_bin is Java $major"
	fi
	case "$ES_VERSION" in
	8.*) ;;
	*) if [ "$major" -lt 21 ]; then
		die "Elasticsearch $ES_VERSION needs Java 21+, $java_bin is Java $major; use an 8.x version"
	fi ;;
	esac
	export ES_JAVA_HOME
}

ensure_user() {
	is_root || return 0
	if ! id "$ES_USER_NAME" >/dev/null 2>&1; then
		log "creating system user $ES_USER_NAME"
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$ES_USER_NAME"
	fi
}

# ensure_traversable lets the node's user reach $ES_ROOT (e.g. /root is 0700):
# it adds only the search (x) bit for others on ancestors that lack it.
ensure_traversable() {
	is_root || return 0
	local d="$ES_ROOT" dirs=() i
	while [ "$d" != "/" ] && [ "$d" != "." ]; do
		dirs=("$d" "${dirs[@]}")
		d="$(dirname "$d")"
	done
	# From the top down, so each check sees its parents already fixed.
	for i in "${dirs[@]}"; do
		if ! runuser -u "$ES_USER_NAME" -- test -x "$i"; then
			log "granting search permission (o+x, no listing) on $i so $ES_USER_NAME can reach the cache"
			chmod o+x "$i"
		fi
	done
}

# ---------------------------------------------------------------- distribution

ensure_distribution() {
	if [ -x "$DIST_DIR/bin/elasticsearch" ]; then
		log "using cached Elasticsearch $ES_VERSION in $DIST_DIR"
		return 0
	fi
	log "downloading Elasticsearch $ES_VERSION ($ARTIFACT) from Maven Central via mvn"
	mkdir -p "$VERSION_DIR"
	local tmp
	tmp="$(mktemp -d "$VERSION_DIR/.download.XXXXXX")"
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	if ! mvn -B -q -U -Dstyle.color=never dependency:copy -Dartifact="$ARTIFACT" -DoutputDirectory="$tmp" \
		</dev/null >"$tmp/mvn.log" 2>&1; then
		sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" | grep -m 3 'ERROR' >&2 || tail -n 20 "$tmp/mvn.log" >&2
		rm -rf "$tmp"
		rmdir "$VERSION_DIR" 2>/dev/null || true
		die "could not download $ARTIFACT (is the version published on Maven Central? see docs/elasticsearch.md)"
	fi
	log "unpacking into $VERSION_DIR"
	unzip -q "$tmp/elasticsearch-$ES_VERSION.zip" -d "$tmp/unpacked"
	[ -x "$tmp/unpacked/elasticsearch-$ES_VERSION/bin/elasticsearch" ] ||
		die "unexpected archive layout in elasticsearch-$ES_VERSION.zip"
	rm -rf "$DIST_DIR"
	mv "$tmp/unpacked/elasticsearch-$ES_VERSION" "$DIST_DIR"
	rm -rf "$tmp"
	trap - EXIT
}

# ---------------------------------------------------------------- node state

# node_pid prints the pid from the pid file if that process is alive and is
# an Elasticsearch JVM (guards against a stale file and a reused pid).
node_pid() {
	[ -f "$PID_FILE" ] || return 1
	local pid
	pid="$(tr -dc '0-9' <"$PID_FILE")"
	[ -n "$pid" ] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'org.elasticsearch' || return 1
	echo "$pid"
}

# es_curl ARGS... is curl against the node: on the secured node with its CA
# and the superuser's credentials (given on stdin, never on the command line).
es_curl() {
	if [ "$SECURE" = 1 ]; then
		[ -f "$SECRETS_DIR/ca.crt" ] && [ -f "$SECRETS_DIR/elastic.password" ] || return 1
		printf 'user = "elastic:%s"\n' "$(cat "$SECRETS_DIR/elastic.password")" |
			curl -s -K - --cacert "$SECRETS_DIR/ca.crt" "$@"
	else
		curl -s "$@"
	fi
}

# health prints the cluster status (green/yellow/red) or nothing.
health() {
	{ es_curl -m 5 "$URL/_cluster/health" 2>/dev/null || true; } |
		sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}

# es_version prints the version of the node answering on $URL.
es_version() {
	{ es_curl -m 5 "$URL/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null || true; } |
		sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}

healthy() {
	case "$(health)" in green | yellow) return 0 ;; *) return 1 ;; esac
}

port_in_use() {
	curl -s -k -m 2 -o /dev/null "$URL" 2>/dev/null && return 0
	(exec 3<>"/dev/tcp/127.0.0.1/$ES_PORT") 2>/dev/null
}

node_log_file() {
	local node_dir="$NODE_DIR"
	[ -f "$HOME_FILE" ] && node_dir="$(cat "$HOME_FILE")"
	echo "$node_dir/logs/$CLUSTER_NAME.log"
}

print_log_tail() {
	local f out="$NODE_DIR/logs/launcher.out"
	f="$(node_log_file)"
	# The launcher's own output: errors from before logging starts (bad
	# JVM, unknown setting, ...); its log lines are repeated in the node log.
	if grep -qv -e '^\[20' -e '^[[:space:]]*$' "$out" 2>/dev/null; then
		echo "----- launcher output ($out), log lines left out -----" >&2
		grep -v -e '^\[20' -e '^[[:space:]]*$' "$out" | tail -n 30 >&2 || true
	fi
	if [ -f "$f" ]; then
		echo "----- last lines of $f -----" >&2
		tail -n 40 "$f" >&2 || true
	else
		echo "(no node log at $f)" >&2
	fi
}

# ---------------------------------------------------------------- node config

prepare_node_dir() {
	mkdir -p "$NODE_DIR" "$RUN_DIR"
	# The data directory is kept: a node used as a deployment (the README's)
	# keeps its trail across down/up; `reset` empties it. Tests never depend
	# on leftovers (they use unique index names).
	rm -rf "$NODE_DIR/tmp" "$NODE_DIR/config"
	mkdir -p "$NODE_DIR/data" "$NODE_DIR/logs" "$NODE_DIR/tmp"
	cp -R "$ES_HOME_DIR/config" "$NODE_DIR/config"

	local security=""
	if [ "$SECURE" = 1 ]; then
		prepare_secrets
		mkdir -p "$NODE_DIR/config/certs"
		# SSL files must be inside the config directory (the node refuses others).
		cp "$SECRETS_DIR/ca.crt" "$SECRETS_DIR/node.crt" "$SECRETS_DIR/node.key" "$NODE_DIR/config/certs/"
		cp "$SECRETS_DIR/elasticsearch.keystore" "$NODE_DIR/config/"
		security='xpack.security.enabled: true
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: certs/node.key
xpack.security.http.ssl.certificate: certs/node.crt
xpack.security.http.ssl.certificate_authorities: [ "certs/ca.crt" ]
xpack.security.transport.ssl.enabled: true
xpack.security.transport.ssl.verification_mode: certificate
xpack.security.transport.ssl.key: certs/node.key
xpack.security.transport.ssl.certificate: certs/node.crt
xpack.security.transport.ssl.certificate_authorities: [ "certs/ca.crt" ]'
	elif [ -d "$ES_HOME_DIR/modules/x-pack-security" ]; then
		# Plain HTTP without users, like ES's own test clusters.
		security="xpack.security.enabled: false"
	fi
	cat >"$NODE_DIR/config/elasticsearch.yml" <<EOF
# Written by scripts/es.sh; regenerated on every start.
cluster.name: $CLUSTER_NAME
node.name: batchaudit-es-$ES_PORT
discovery.type: single-node
network.host: 127.0.0.1
http.port: $ES_PORT
path.data: $NODE_DIR/data
path.logs: $NODE_DIR/logs
action.destructive_requires_name: false
cluster.routing.allocation.disk.threshold_enabled: false
$security
EOF
	rm -f "$NODE_DIR/logs/launcher.out"
	if is_root; then
		chown -R "$ES_USER_NAME:" "$VERSION_DIR" "$RUN_DIR"
	fi
}

# ---------------------------------------------------------------- security

# ensure_secure_home makes the secured node's copy of the distribution with
# the test analysis plugin, rebuilt when the plugin's source changes.
ensure_secure_home() {
	local plugin_dir="$ES_HOME_DIR/plugins/batchaudit-test-analysis" sum tmp
	sum="$(sha256sum "$PLUGIN_SRC" | cut -d' ' -f1)"
	if [ -f "$plugin_dir/source.sha256" ] && [ "$(cat "$plugin_dir/source.sha256")" = "$sum" ]; then
		return 0
	fi
	log "building the test analysis plugin from ${PLUGIN_SRC#"$REPO_DIR"/} (javac)"
	if [ ! -d "$ES_HOME_DIR" ]; then
		rm -rf "$ES_HOME_DIR.tmp"
		cp -al "$DIST_DIR" "$ES_HOME_DIR.tmp"
		mv "$ES_HOME_DIR.tmp" "$ES_HOME_DIR"
	fi
	tmp="$(mktemp -d)"
	javac -nowarn --release 17 -cp "$DIST_DIR/lib/*" -d "$tmp/classes" "$PLUGIN_SRC" ||
		{ rm -rf "$tmp"; die "compiling $PLUGIN_SRC failed"; }
	# A fixed date keeps the jar byte-identical across builds.
	jar --create --date=2000-01-01T00:00:02Z --file "$tmp/batchaudit-test-analysis.jar" -C "$tmp/classes" .
	rm -rf "$plugin_dir"
	mkdir -p "$plugin_dir"
	cp "$tmp/batchaudit-test-analysis.jar" "$plugin_dir/"
	cat >"$plugin_dir/plugin-descriptor.properties" <<EOF
description=Test-only analysis components for the .security index (scripts/es-test-analysis)
version=1.0.0
name=batchaudit-test-analysis
classname=batchaudit.estest.TestAnalysisPlugin
java.version=17
elasticsearch.version=$ES_VERSION
EOF
	echo "$sum" >"$plugin_dir/source.sha256"
	rm -rf "$tmp"
}

# prepare_secrets makes, once per node directory, the CA and the node's
# certificate (openssl), the passwords, and the keystore that holds the
# superuser's bootstrap password.
prepare_secrets() {
	[ -f "$SECRETS_DIR/elasticsearch.keystore" ] && return 0
	log "creating a CA, the node certificate and passwords in $SECRETS_DIR"
	rm -rf "$SECRETS_DIR"
	mkdir -p "$SECRETS_DIR"
	chmod 700 "$SECRETS_DIR"
	(
		cd "$SECRETS_DIR"
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=batchaudit test CA" \
			-keyout ca.key -out ca.crt \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout node.key -out node.csr 2>/dev/null
		printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
			'extendedKeyUsage=serverAuth,clientAuth' 'subjectAltName=DNS:localhost,IP:127.0.0.1' >node.ext
		openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile node.ext -out node.crt 2>/dev/null
		rm -f node.csr node.ext ca.srl
		for u in elastic writer reader admin; do openssl rand -hex 16 >"$u.password"; done
	)
	# The keystore is written by the node's own tool, as the node's user
	# (add -f creates it).
	local ks_conf
	ks_conf="$(mktemp -d)"
	if is_root; then chown "$ES_USER_NAME:" "$ks_conf"; fi
	run_as_es env ES_JAVA_HOME="$ES_JAVA_HOME" ES_PATH_CONF="$ks_conf" \
		"$ES_HOME_DIR/bin/elasticsearch-keystore" add -x -f bootstrap.password <"$SECRETS_DIR/elastic.password" >/dev/null
	cp "$ks_conf/elasticsearch.keystore" "$SECRETS_DIR/"
	rm -rf "$ks_conf"
}

# es_request METHOD PATH [BODY_FILE] sends one request as the superuser,
# prints the answer, and fails with it unless it is 2xx.
es_request() {
	local out code
	out="$(mktemp)"
	code="$(es_curl -m 30 -o "$out" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
		"$URL$2" ${3:+--data-binary "@$3"})" || code=000
	if [ "${code:0:1}" != 2 ]; then
		echo "es.sh: ERROR: $1 $2: HTTP $code: $(head -c 500 "$out")" >&2
		rm -f "$out"
		return 1
	fi
	cat "$out"
	rm -f "$out"
}

# api_key_valid KEY: whether the encoded API key still authenticates.
api_key_valid() {
	[ -n "$1" ] || return 1
	[ "$(curl -s -m 10 -o /dev/null -w '%{http_code}' --cacert "$SECRETS_DIR/ca.crt" \
		-H "Authorization: ApiKey $1" "$URL/_security/_authenticate")" = 200 ]
}

# secure_setup creates (idempotently) the roles of store/esstore/roles, the
# users batchaudit-{writer,reader,admin} and an API key each for the writer
# and the reader (granted with the user's password, so limited by its role),
# and writes the env file. These are the curl steps of docs/elasticsearch.md.
secure_setup() {
	local f role u tmp key roles_sum writer_key="" reader_key=""
	tmp="$(mktemp -d)"
	for f in "$ROLES_DIR"/*.json; do
		role="$(basename "$f" .json)"
		es_request PUT "/_security/role/$role" "$f" >/dev/null || { rm -rf "$tmp"; return 1; }
	done
	for u in writer reader admin; do
		printf '{"password":"%s","roles":["batchaudit_%s"],"full_name":"batchaudit %s (scripts/es.sh)"}' \
			"$(cat "$SECRETS_DIR/$u.password")" "$u" "$u" >"$tmp/user.json"
		es_request PUT "/_security/user/batchaudit-$u" "$tmp/user.json" >/dev/null || { rm -rf "$tmp"; return 1; }
	done
	# A key keeps the privileges its role had when it was made: new role
	# files mean new keys.
	roles_sum="$(cat "$ROLES_DIR"/*.json | sha256sum | cut -d' ' -f1)"
	if [ -f "$ENV_FILE" ] && grep -qx "BATCHAUDIT_ES_ROLES_SHA256=$roles_sum" "$ENV_FILE"; then
		writer_key="$(sed -n 's/^BATCHAUDIT_ES_WRITER_API_KEY=//p' "$ENV_FILE")"
		reader_key="$(sed -n 's/^BATCHAUDIT_ES_READER_API_KEY=//p' "$ENV_FILE")"
	fi
	for u in writer reader; do
		key="$writer_key"
		[ "$u" = reader ] && key="$reader_key"
		if ! api_key_valid "$key"; then
			printf '{"name":"batchaudit-%s (scripts/es.sh)"}' "$u" >"$tmp/invalidate.json"
			es_request DELETE "/_security/api_key" "$tmp/invalidate.json" >/dev/null || true
			printf '{"grant_type":"password","username":"batchaudit-%s","password":"%s","api_key":{"name":"batchaudit-%s (scripts/es.sh)"}}' \
				"$u" "$(cat "$SECRETS_DIR/$u.password")" "$u" >"$tmp/grant.json"
			key="$(es_request POST "/_security/api_key/grant" "$tmp/grant.json" |
				sed -n 's/.*"encoded":"\([^"]*\)".*/\1/p')"
			[ -n "$key" ] || { rm -rf "$tmp"; echo "es.sh: ERROR: granting the $u API key returned no key" >&2; return 1; }
		fi
		if [ "$u" = writer ]; then writer_key="$key"; else reader_key="$key"; fi
	done
	rm -rf "$tmp"
	(
		umask 077
		cat >"$ENV_FILE.tmp" <<EOF
# Written by scripts/es.sh (BATCHAUDIT_ES_SECURE=1) for the secured node on port $ES_PORT.
BATCHAUDIT_ES_SECURE_URL=$URL
BATCHAUDIT_ES_CA=$SECRETS_DIR/ca.crt
BATCHAUDIT_ES_ADMIN_USER=elastic
BATCHAUDIT_ES_ADMIN_PASSWORD=$(cat "$SECRETS_DIR/elastic.password")
BATCHAUDIT_ES_SETUP_USER=batchaudit-admin
BATCHAUDIT_ES_SETUP_PASSWORD=$(cat "$SECRETS_DIR/admin.password")
BATCHAUDIT_ES_WRITER_USER=batchaudit-writer
BATCHAUDIT_ES_WRITER_PASSWORD=$(cat "$SECRETS_DIR/writer.password")
BATCHAUDIT_ES_READER_USER=batchaudit-reader
BATCHAUDIT_ES_READER_PASSWORD=$(cat "$SECRETS_DIR/reader.password")
BATCHAUDIT_ES_WRITER_API_KEY=$writer_key
BATCHAUDIT_ES_READER_API_KEY=$reader_key
BATCHAUDIT_ES_ROLES_SHA256=$roles_sum
EOF
		mv "$ENV_FILE.tmp" "$ENV_FILE"
	)
	log "roles, users and API keys ready; connection settings in $ENV_FILE"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local start wait_start now pid
	start="$(date +%s)"
	ensure_tools
	mkdir -p "$ES_ROOT"
	# Serialise concurrent `up`/`down` (several engineers or CI jobs).
	exec 9>"$ES_ROOT/.lock-$ES_PORT"
	flock -w 300 9 || die "timed out waiting for the lock $ES_ROOT/.lock-$ES_PORT"

	if pid="$(node_pid)" && healthy; then
		log "Elasticsearch already running (pid $pid, version $(es_version), health $(health)); reusing it"
		log "URL: $URL"
		if [ "$SECURE" = 1 ]; then secure_setup; fi
		return 0
	fi
	wait_start="$(date +%s)"
	if pid="$(node_pid)"; then
		log "node pid $pid is running but not healthy yet; waiting for it"
	else
		rm -f "$PID_FILE" "$HOME_FILE"
		if port_in_use; then
			if healthy; then
				log "an Elasticsearch not started by this script already answers on $URL (version $(es_version), health $(health)); reusing it"
				return 0
			fi
			die "port $ES_PORT on 127.0.0.1 is in use by something that is not a healthy Elasticsearch; set BATCHAUDIT_ES_PORT or stop it"
		fi

		detect_java
		ensure_user
		ensure_distribution
		if [ "$SECURE" = 1 ]; then ensure_secure_home; fi
		ensure_traversable
		prepare_node_dir
		echo "$NODE_DIR" >"$HOME_FILE"

		local run_user
		run_user="$(id -un)"
		if is_root; then run_user="$ES_USER_NAME"; fi
		wait_start="$(date +%s)"
		log "starting Elasticsearch $ES_VERSION on $URL (java: $ES_JAVA_HOME, user: $run_user, heap 1g, security $([ "$SECURE" = 1 ] && echo on || echo off))"
		# -d daemonises: the launcher returns once the server process is up
		# (or has failed); -p makes the server write its own pid.
		local rc=0
		(cd "$NODE_DIR" && run_as_es env \
			HOME="$NODE_DIR" \
			ES_JAVA_HOME="$ES_JAVA_HOME" \
			ES_PATH_CONF="$NODE_DIR/config" \
			ES_TMPDIR="$NODE_DIR/tmp" \
			ES_JAVA_OPTS="-Xms1g -Xmx1g" \
			timeout "$TIMEOUT" "$ES_HOME_DIR/bin/elasticsearch" -d -p "$PID_FILE" \
			</dev/null >"$NODE_DIR/logs/launcher.out" 2>&1) || rc=$?
		if [ "$rc" -eq 124 ]; then
			fail_start "Elasticsearch $ES_VERSION did not start within ${TIMEOUT}s on $URL"
		elif [ "$rc" -ne 0 ]; then
			fail_start "Elasticsearch $ES_VERSION failed to start on $URL (launcher exit code $rc)"
		fi
	fi

	# Wait for yellow: enough for one node, which cannot allocate replicas.
	while :; do
		if healthy; then break; fi
		now="$(date +%s)"
		if ! node_pid >/dev/null; then
			fail_start "the Elasticsearch process exited during startup"
		fi
		if [ $((now - wait_start)) -ge "$TIMEOUT" ]; then
			fail_start "Elasticsearch not healthy (yellow) after ${TIMEOUT}s on $URL"
		fi
		sleep 1
	done
	if [ "$SECURE" = 1 ]; then secure_setup || fail_start "could not create the roles, users and API keys"; fi
	now="$(date +%s)"
	log "Elasticsearch $(es_version) is up (health $(health), pid $(node_pid)) in $((now - start))s"
	log "URL: $URL"
}

# stop_node PID: SIGTERM, wait up to 30s, then SIGKILL.
stop_node() {
	local pid="$1" i
	log "stopping Elasticsearch (pid $pid) with SIGTERM"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "still running after 30s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for i in $(seq 1 20); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
	fi
	rm -f "$PID_FILE" "$HOME_FILE"
}

# fail_start prints why the start failed and the log tail, stops a server
# process that got as far as writing its pid file, and exits 1.
fail_start() {
	local pid
	echo "es.sh: ERROR: $*" >&2
	print_log_tail
	if pid="$(node_pid)"; then
		stop_node "$pid" >&2
	fi
	rm -f "$PID_FILE" "$HOME_FILE"
	exit 1
}

cmd_down() {
	local pid
	mkdir -p "$ES_ROOT"
	exec 9>"$ES_ROOT/.lock-$ES_PORT"
	flock -w 300 9 || die "timed out waiting for the lock $ES_ROOT/.lock-$ES_PORT"
	if ! pid="$(node_pid)"; then
		log "no Elasticsearch started by this script is running on port $ES_PORT"
		rm -f "$PID_FILE" "$HOME_FILE"
		return 0
	fi
	stop_node "$pid"
	log "stopped"
}

# cmd_reset stops the node (if this script started it) and deletes its node
# directory: data, logs, and with security the CA, passwords and API keys.
cmd_reset() {
	local pid
	mkdir -p "$ES_ROOT"
	exec 9>"$ES_ROOT/.lock-$ES_PORT"
	flock -w 300 9 || die "timed out waiting for the lock $ES_ROOT/.lock-$ES_PORT"
	if pid="$(node_pid)"; then
		stop_node "$pid"
	elif port_in_use; then
		die "something not started by this script answers on port $ES_PORT; not touching $NODE_DIR"
	fi
	rm -rf "$NODE_DIR"
	if [ "$SECURE" = 1 ]; then rm -f "$ENV_FILE"; fi
	log "deleted $NODE_DIR (the next \`up\` starts with no data)"
}

# cmd_env prints the secured node's connection settings (shell syntax).
cmd_env() {
	[ "$SECURE" = 1 ] || die "env is for the secured node: BATCHAUDIT_ES_SECURE=1 $0 env"
	[ -f "$ENV_FILE" ] || die "no $ENV_FILE: start the node with BATCHAUDIT_ES_SECURE=1 $0 up"
	grep -v '^#' "$ENV_FILE"
}

cmd_status() {
	local pid h
	h="$(health)"
	if pid="$(node_pid)"; then
		if [ -n "$h" ]; then
			log "running: pid $pid, URL $URL, version $(es_version), health $h"
			case "$h" in green | yellow) return 0 ;; *) return 1 ;; esac
		fi
		log "process $pid is running but $URL does not answer (starting up?)"
		return 1
	fi
	if [ -n "$h" ]; then
		log "not started by this script, but an Elasticsearch answers on $URL: version $(es_version), health $h"
		case "$h" in green | yellow) return 0 ;; *) return 1 ;; esac
	fi
	log "not running (URL would be $URL)"
	return 1
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
reset) cmd_reset ;;
env) cmd_env ;;
status) cmd_status ;;
*) usage ;;
esac

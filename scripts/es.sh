#!/usr/bin/env bash
# scripts/es.sh - run a real single-node Elasticsearch for tests and local runs.
#
#   scripts/es.sh up      download (once), start and wait for a yellow/green node
#   scripts/es.sh down    stop the node started by `up`
#   scripts/es.sh status  print state, URL, version and health (exit 0 up, 1 down)
#
# The node is Elastic's "integ-test-zip" distribution from Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip),
# fetched with Maven so that mirrors/proxies from ~/.m2/settings.xml apply.
# It is a real Elasticsearch server with only a few modules (see
# docs/elasticsearch.md), run on the system JDK 17.
#
# Environment:
#   BATCHAUDIT_ES_VERSION  Elasticsearch version           (default 8.19.7)
#   BATCHAUDIT_ES_PORT     HTTP port on 127.0.0.1          (default 9200)
#   BATCHAUDIT_CACHE       cache root outside the repo     (default ~/.cache/batchaudit)
#   BATCHAUDIT_ES_TIMEOUT  seconds to wait for health      (default 180)
#
# Layout under $BATCHAUDIT_CACHE/es:
#   <version>/elasticsearch-<version>/   unpacked distribution (ES_HOME), reused
#   <version>/node-<port>/{config,data,logs,tmp}
#   run/es-<port>.pid                    pid of the running server process
#   run/es-<port>.home                   which node dir that pid belongs to
set -euo pipefail

ES_VERSION="${BATCHAUDIT_ES_VERSION:-8.19.7}"
ES_PORT="${BATCHAUDIT_ES_PORT:-9200}"
CACHE_ROOT="${BATCHAUDIT_CACHE:-${HOME:-/root}/.cache/batchaudit}"
TIMEOUT="${BATCHAUDIT_ES_TIMEOUT:-180}"
ES_USER_NAME="batchaudit-es"
CLUSTER_NAME="batchaudit-test"

ES_ROOT="$CACHE_ROOT/es"
VERSION_DIR="$ES_ROOT/$ES_VERSION"
ES_HOME_DIR="$VERSION_DIR/elasticsearch-$ES_VERSION"
NODE_DIR="$VERSION_DIR/node-$ES_PORT"
RUN_DIR="$ES_ROOT/run"
PID_FILE="$RUN_DIR/es-$ES_PORT.pid"
HOME_FILE="$RUN_DIR/es-$ES_PORT.home"
URL="http://127.0.0.1:$ES_PORT"
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"

log() { printf 'es.sh: %s\n' "$*"; }
die() { printf 'es.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
	echo "usage: $0 up|down|status" >&2
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
	if [ -x "$ES_HOME_DIR/bin/elasticsearch" ]; then
		log "using cached Elasticsearch $ES_VERSION in $ES_HOME_DIR"
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
	rm -rf "$ES_HOME_DIR"
	mv "$tmp/unpacked/elasticsearch-$ES_VERSION" "$ES_HOME_DIR"
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

# health prints the cluster status (green/yellow/red) or nothing.
health() {
	{ curl -s -m 5 "$URL/_cluster/health" 2>/dev/null || true; } |
		sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}

# es_version prints the version of the node answering on $URL.
es_version() {
	{ curl -s -m 5 "$URL/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null || true; } |
		sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}

healthy() {
	case "$(health)" in green | yellow) return 0 ;; *) return 1 ;; esac
}

port_in_use() {
	curl -s -m 2 -o /dev/null "$URL" 2>/dev/null && return 0
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
	# A fresh start gets empty data: tests must not depend on leftovers.
	rm -rf "$NODE_DIR/data" "$NODE_DIR/tmp" "$NODE_DIR/config"
	mkdir -p "$NODE_DIR/data" "$NODE_DIR/logs" "$NODE_DIR/tmp"
	cp -R "$ES_HOME_DIR/config" "$NODE_DIR/config"

	local security=""
	if [ -d "$ES_HOME_DIR/modules/x-pack-security" ]; then
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
		ensure_traversable
		prepare_node_dir
		echo "$NODE_DIR" >"$HOME_FILE"

		local run_user
		run_user="$(id -un)"
		if is_root; then run_user="$ES_USER_NAME"; fi
		wait_start="$(date +%s)"
		log "starting Elasticsearch $ES_VERSION on $URL (java: $ES_JAVA_HOME, user: $run_user, heap 1g)"
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
status) cmd_status ;;
*) usage ;;
esac

#!/usr/bin/env bash
# scripts/kafka.sh - run a real single-node Kafka broker (KRaft) for tests and local runs.
#
#   scripts/kafka.sh up      fetch the broker jars (once), start and wait until it serves clients
#   scripts/kafka.sh down    stop the broker started by `up` (its data stays)
#   scripts/kafka.sh reset   stop the broker and delete its data (topics, offsets, cluster id)
#   scripts/kafka.sh status  print state and address (exit 0 up, 1 down)
#
# The broker is Apache Kafka's own server (org.apache.kafka:kafka_2.13 from
# Maven Central, with a log4j2 SLF4J binding the published POM lacks), run
# with `java -cp 'lib/*' kafka.Kafka`: controller and broker in one JVM, on
# 127.0.0.1 only, internal topics with replication factor 1. Maven fetches
# the jars, so mirrors and proxies from ~/.m2/settings.xml apply. No Docker.
# Facts and timings: /work/shared/research/kafka-for-tests.md (docs/scale-out.md
# links what the tests rely on).
#
# Environment:
#   BATCHAUDIT_KAFKA_VERSION  Kafka version                       (default 4.4.0)
#   BATCHAUDIT_KAFKA_PORT     client port on 127.0.0.1            (default 9092; the controller uses port+1)
#   BATCHAUDIT_CACHE          cache root outside the repo         (default ~/.cache/batchaudit)
#   BATCHAUDIT_KAFKA_TIMEOUT  seconds to wait for the broker      (default 120)
#   BATCHAUDIT_KAFKA_HEAP     JVM heap                            (default 512m)
#
# Layout under $BATCHAUDIT_CACHE/kafka:
#   <version>/lib/                      the broker's jars (reused)
#   <version>/node-<port>/              server.properties, log4j2.properties, cluster.id, broker.log
#   <version>/node-<port>/data/         the broker's log directory, kept until `reset`
#   run/kafka-<port>.pid                pid of the running broker JVM
set -euo pipefail

KAFKA_VERSION="${BATCHAUDIT_KAFKA_VERSION:-4.4.0}"
# The log4j version Kafka 4.4.0 depends on: the SLF4J binding must match it.
LOG4J_VERSION="${BATCHAUDIT_KAFKA_LOG4J_VERSION:-2.25.5}"
PORT="${BATCHAUDIT_KAFKA_PORT:-9092}"
CONTROLLER_PORT=$((PORT + 1))
CACHE_ROOT="${BATCHAUDIT_CACHE:-${HOME:-/root}/.cache/batchaudit}"
TIMEOUT="${BATCHAUDIT_KAFKA_TIMEOUT:-120}"
HEAP="${BATCHAUDIT_KAFKA_HEAP:-512m}"

ROOT="$CACHE_ROOT/kafka"
VERSION_DIR="$ROOT/$KAFKA_VERSION"
LIB_DIR="$VERSION_DIR/lib"
NODE_DIR="$VERSION_DIR/node-$PORT"
DATA_DIR="$NODE_DIR/data"
RUN_DIR="$ROOT/run"
PID_FILE="$RUN_DIR/kafka-$PORT.pid"
ADDR="127.0.0.1:$PORT"

log() { printf 'kafka.sh: %s\n' "$*"; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
	echo "usage: $0 up|down|reset|status" >&2
	exit 2
}

ensure_tools() {
	local missing=()
	command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
	command -v mvn >/dev/null 2>&1 || missing+=(maven)
	[ "${#missing[@]}" -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing tools: ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"
	fi
	log "installing missing packages: ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
}

check_java() {
	local major
	major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')"
	[ -n "$major" ] || die "cannot determine the Java version of $(command -v java)"
	[ "$major" -ge 17 ] || die "Kafka $KAFKA_VERSION needs Java 17+, $(command -v java) is Java $major"
}

# ensure_jars copies the broker's runtime jars from Maven Central into lib/
# once; a complete lib/ is marked by .complete.
ensure_jars() {
	if [ -f "$LIB_DIR/.complete" ]; then
		return 0
	fi
	log "fetching Kafka $KAFKA_VERSION (org.apache.kafka:kafka_2.13) and its runtime jars from Maven Central via mvn"
	mkdir -p "$VERSION_DIR"
	local tmp
	tmp="$(mktemp -d "$VERSION_DIR/.download.XXXXXX")"
	cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>batchaudit.test</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
      <scope>runtime</scope>
    </dependency>
  </dependencies>
</project>
EOF
	if ! (cd "$tmp" && mvn -B -q -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$tmp/lib" </dev/null >"$tmp/mvn.log" 2>&1); then
		sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" | grep -m 3 'ERROR' >&2 || tail -n 20 "$tmp/mvn.log" >&2
		rm -rf "$tmp"
		die "could not fetch Kafka $KAFKA_VERSION from Maven Central"
	fi
	ls "$tmp/lib"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar among the fetched jars"; }
	rm -rf "$LIB_DIR"
	mv "$tmp/lib" "$LIB_DIR"
	touch "$LIB_DIR/.complete"
	rm -rf "$tmp"
	log "$(ls "$LIB_DIR" | wc -l) jars in $LIB_DIR"
}

# prepare_node writes the broker's configuration and formats its log
# directory once (the cluster id is kept beside it, so `up` after `down`
# reuses the data).
prepare_node() {
	mkdir -p "$DATA_DIR"
	cat >"$NODE_DIR/server.properties" <<EOF
# Written by scripts/kafka.sh: a single-node KRaft broker on loopback for tests and local runs.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
# One node: internal topics with replication factor 1 (the default of 3 keeps groups and transactions from forming).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests delete many short-lived topics: remove their files soon.
file.delete.delay.ms=1000
EOF
	cat >"$NODE_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.cfg.name = org.apache.kafka.common.config.AbstractConfig
logger.cfg.level = WARN
logger.kcfg.name = kafka.server.KafkaConfig
logger.kcfg.level = WARN
EOF
	if [ -f "$DATA_DIR/meta.properties" ]; then
		return 0
	fi
	local cid
	# Kafka's own generator (a URL-safe base64 UUID that never starts with '-').
	cid="$(java -cp "$LIB_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
	[ -n "$cid" ] || die "could not generate a cluster id"
	echo "$cid" >"$NODE_DIR/cluster.id"
	log "formatting $DATA_DIR (cluster id $cid)"
	java -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$NODE_DIR/log4j2.properties" \
		kafka.tools.StorageTool format --standalone --cluster-id "$cid" --config "$NODE_DIR/server.properties" \
		>"$NODE_DIR/format.log" 2>&1 || { cat "$NODE_DIR/format.log" >&2; die "formatting the broker's log directory failed"; }
}

broker_pid() {
	local pid
	[ -f "$PID_FILE" ] || return 1
	pid="$(cat "$PID_FILE")"
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# The pid may have been reused by another process since.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka.Kafka' || return 1
	echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

started() { grep -q 'Kafka Server started' "$NODE_DIR/broker.log" 2>/dev/null; }

cmd_up() {
	local start pid now
	start="$(date +%s)"
	ensure_tools
	check_java
	mkdir -p "$RUN_DIR"
	exec 9>"$ROOT/.lock-$PORT"
	flock -w 300 9 || die "timed out waiting for the lock $ROOT/.lock-$PORT"
	if pid="$(broker_pid)" && port_open; then
		log "Kafka already running (pid $pid) on $ADDR; reusing it"
		return 0
	fi
	if ! broker_pid >/dev/null; then
		rm -f "$PID_FILE"
		if port_open; then
			die "port $PORT on 127.0.0.1 is in use by something not started by this script; set BATCHAUDIT_KAFKA_PORT or stop it"
		fi
		ensure_jars
		prepare_node
		log "starting Kafka $KAFKA_VERSION on $ADDR (controller 127.0.0.1:$CONTROLLER_PORT, heap $HEAP, data $DATA_DIR)"
		: >"$NODE_DIR/broker.log"
		# Its own session, stdio to the log, and without the lock's fd 9: the
		# broker outlives this script and must not hold its lock or pipes.
		(cd "$NODE_DIR" && exec setsid java -Xms"$HEAP" -Xmx"$HEAP" -Dlog4j2.configurationFile="$NODE_DIR/log4j2.properties" \
			-cp "$LIB_DIR/*" kafka.Kafka "$NODE_DIR/server.properties") </dev/null >>"$NODE_DIR/broker.log" 2>&1 9>&- &
		echo $! >"$PID_FILE"
	fi
	while :; do
		if started && port_open; then break; fi
		# Liveness by pid only: right after the start the process may not
		# have exec'ed java yet.
		if ! kill -0 "$(cat "$PID_FILE" 2>/dev/null || echo 0)" 2>/dev/null; then
			tail -n 30 "$NODE_DIR/broker.log" >&2 || true
			rm -f "$PID_FILE"
			die "the broker exited during startup (log: $NODE_DIR/broker.log)"
		fi
		now="$(date +%s)"
		if [ $((now - start)) -ge "$TIMEOUT" ]; then
			tail -n 30 "$NODE_DIR/broker.log" >&2 || true
			stop_broker "$(cat "$PID_FILE")"
			die "Kafka did not start within ${TIMEOUT}s"
		fi
		sleep 0.2
	done
	log "Kafka $KAFKA_VERSION is up (pid $(broker_pid)) in $(($(date +%s) - start))s; bootstrap server $ADDR"
}

# stop_broker PID: SIGTERM (a clean shutdown), wait up to 30s, then SIGKILL.
stop_broker() {
	local pid="$1" i
	[ -n "$pid" ] || return 0
	log "stopping Kafka (pid $pid) with SIGTERM"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "still running after 30s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$PID_FILE"
}

cmd_down() {
	local pid
	mkdir -p "$RUN_DIR"
	exec 9>"$ROOT/.lock-$PORT"
	flock -w 300 9 || die "timed out waiting for the lock $ROOT/.lock-$PORT"
	if ! pid="$(broker_pid)"; then
		log "no Kafka started by this script is running on port $PORT"
		rm -f "$PID_FILE"
		return 0
	fi
	stop_broker "$pid"
	log "stopped (data kept in $DATA_DIR; \`reset\` deletes it)"
}

cmd_reset() {
	local pid
	mkdir -p "$RUN_DIR"
	exec 9>"$ROOT/.lock-$PORT"
	flock -w 300 9 || die "timed out waiting for the lock $ROOT/.lock-$PORT"
	if pid="$(broker_pid)"; then
		stop_broker "$pid"
	elif port_open; then
		die "something not started by this script listens on port $PORT; not touching $NODE_DIR"
	fi
	rm -rf "$NODE_DIR"
	log "deleted $NODE_DIR (the next \`up\` starts with no topics)"
}

cmd_status() {
	local pid
	if pid="$(broker_pid)"; then
		if port_open; then
			log "running: pid $pid, bootstrap server $ADDR, Kafka $KAFKA_VERSION, data $DATA_DIR"
			return 0
		fi
		log "process $pid is running but $ADDR does not accept connections (starting up?)"
		return 1
	fi
	if port_open; then
		log "not started by this script, but something listens on $ADDR"
		return 1
	fi
	log "not running (bootstrap server would be $ADDR)"
	return 1
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
reset) cmd_reset ;;
status) cmd_status ;;
*) usage ;;
esac

#!/usr/bin/env bash
# `make run`: start otelcol-batchaudit with configs/local.yaml, run the example orders job twice
# (day 1, then day 2 with inserted, updated, unchanged and removed orders) and show the audit trail.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=_build
DATA=${BATCHAUDIT_DATA:-batchaudit-data}
mkdir -p "$DATA"
LOG="$DATA/collector.log"

if curl -sf http://127.0.0.1:13133/ >/dev/null 2>&1; then
  echo "A collector already answers on 127.0.0.1:13133; stop it first." >&2
  exit 1
fi
# The collector signs the trail's checkpoints, and the report extension and the CLI sign reports,
# with this key (configs/local.yaml names it); its verifier key is public.
KEY="$DATA/signing.key"
PUB="$DATA/signing.pub"
if [ ! -f "$KEY" ]; then
  "$BUILD/batchaudit" keygen --name batchaudit-demo --out "$KEY" >"$PUB" 2>/dev/null
fi
echo "==> verifier key (give it to auditors): $(cat "$PUB")"
echo "==> starting otelcol-batchaudit (configs/local.yaml); log: $LOG"
"$BUILD/otelcol-batchaudit" --config configs/local.yaml >"$LOG" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:13133/ >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "collector failed to start:"; tail -30 "$LOG"; exit 1; }
  sleep 0.2
done

export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
echo "==> day 1: ordersjob over examples/ordersjob/testdata/orders_day1.csv"
"$BUILD/ordersjob" -in examples/ordersjob/testdata/orders_day1.csv -out "$DATA/orders_clean_day1.csv"
echo "==> day 2: ordersjob over examples/ordersjob/testdata/orders_day2.csv"
"$BUILD/ordersjob" -in examples/ordersjob/testdata/orders_day2.csv -out "$DATA/orders_clean_day2.csv"

echo "==> waiting for the lineage processor to settle both runs (settle_time 2s in configs/local.yaml)"
sleep 3
echo "==> stopping the collector (it drains its queue into the store)"
kill -TERM $pid; wait $pid || true; trap - EXIT

DB="$DATA/audit.db"
echo
echo "Your audit trail is in $DB (SQLite). Runs:"
"$BUILD/batchaudit" runs --db "$DB"
last=$("$BUILD/batchaudit" runs --db "$DB" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sorted(r, key=lambda x: x["start"])[-1]["batch_id"])')
echo
echo "Changes and findings of the day 2 run ($last):"
"$BUILD/batchaudit" events --db "$DB" --batch "$last" | grep -E 'change|delete|finding|NAME' || true
echo
echo "Lineage of order A-1002:"
"$BUILD/batchaudit" history --db "$DB" A-1002 | grep -E 'lineage|NAME' || true
echo
echo "The latest signed checkpoint of the trail ($BUILD/batchaudit checkpoint --db $DB):"
"$BUILD/batchaudit" checkpoint --db "$DB"
echo
echo "Verify the trail against it and the published checkpoints:"
echo "  $BUILD/batchaudit verify --db $DB --key $PUB --checkpoints $DATA/checkpoints.jsonl"
"$BUILD/batchaudit" verify --db "$DB" --key "$PUB" --checkpoints "$DATA/checkpoints.jsonl"

# Reports over the demo runs: from yesterday to tomorrow (UTC), so runs near midnight are in.
FROM=$(python3 -c 'import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=1))')
TO=$(python3 -c 'import datetime as d; print(d.datetime.now(d.timezone.utc).date() + d.timedelta(days=1))')
echo
echo "==> compliance reports of $FROM .. $TO (signed with $KEY; verifier key in $PUB)"
html=""
for kind in sox reconciliation; do
  dir=$("$BUILD/batchaudit" report "$kind" --db "$DB" --from "$FROM" --to "$TO" --key "$KEY" --checkpoint-key "$PUB" \
    --out "$DATA/reports/demo" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["dir"])')
  "$BUILD/batchaudit" verify-report --key "$PUB" --checkpoint-key "$PUB" "$dir" | sed -n '1p;/^  attestation/p'
  [ "$kind" = sox ] && html="$dir/report.html"
  echo "  $kind: $dir/report.html"
done
echo
echo "Open the SOX report in a browser: $html"
echo "More: $BUILD/batchaudit --help   |   Elasticsearch: configs/elasticsearch.yaml (make es-up)"

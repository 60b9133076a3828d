#!/usr/bin/env bash
# Measures the console's pages with PEOPLE people stored (default 100000) on SQLite: seeds them
# with `tenure import` (a roster from scripts/gen_roster.py; one system, one entitlement each,
# so every person has a hire run, an account, a grant and their audit entries), waits until
# every run has finished, then times each page (scripts/console_bench.py: p50, p99, max and
# size over N requests each, default 200).
#
#   scripts/console_bench.sh [PEOPLE] [N]
#
# With BENCH_DATA_DIR=DIR the seeded data stays in DIR, and a later run with the same DIR
# skips seeding.
#
# Builds the release binary first (into CARGO_TARGET_DIR, default target/) unless TENURE_BIN
# names one. Needs python3 and curl. Measure on a quiet machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
people="${1:-100000}"
rounds="${2:-200}"
if [ -z "${TENURE_BIN:-}" ]; then
  cargo build --release -p tenure >&2
  TENURE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/tenure"
fi
work="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
unset TENURE_CONFIG TENURE_DATABASE_URL TENURE_DATA_DIR

cat >"$work/tenure.toml" <<'TOML'
[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
name = "Staff directory"
TOML
mkdir -p "$work/templates"
echo 'entitlements = ["directory:staff"]' >"$work/templates/all.toml"

# BENCH_DATA_DIR keeps the seeded data directory for the next run (seeding takes minutes).
data="${BENCH_DATA_DIR:-$work/data}"
if [ -e "$data/tenure.db" ]; then
  echo "using the people already in $data" >&2
else
  echo "seeding $people people (tenure import through the engine)" >&2
  python3 scripts/gen_roster.py "$people" >"$work/roster.csv"
  start=$(date +%s)
  "$TENURE_BIN" import "$work/roster.csv" --config "$work/tenure.toml" --data-dir "$data" \
    --confirm >/dev/null
  echo "imported in $(($(date +%s) - start)) s" >&2
fi

port=$((20000 + RANDOM % 20000))
TENURE_BOOTSTRAP_TOKEN=bench-admin-token "$TENURE_BIN" serve --config "$work/tenure.toml" \
  --data-dir "$data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
api="http://127.0.0.1:$port/api/v1"
auth="Authorization: Bearer bench-admin-token"
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
# Every run finished: nothing pending, running or waiting.
while :; do
  open=0
  for state in pending running awaiting_approval; do
    n=$(curl -sf -H "$auth" "$api/runs?state=$state&limit=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
    open=$((open + n))
  done
  [ "$open" -eq 0 ] && break
  sleep 1
done
person=$(python3 -c "print(f'E{$people // 2:07d}')")
run=$(curl -sf -H "$auth" "$api/runs?person=$person&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 scripts/console_bench.py "http://127.0.0.1:$port" bench-admin-token "$person" "$run" "$rounds"

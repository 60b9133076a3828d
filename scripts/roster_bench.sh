#!/usr/bin/env bash
# Measures `tenure import --dry-run` on large synthetic rosters: rows per second and peak RSS.
#
#   scripts/roster_bench.sh [ROWS...]        (default: 100000 1000000)
#
# For each size it generates a roster (scripts/gen_roster.py) and runs, under /usr/bin/time -v:
#   1. against an empty data directory: every row is a hire;
#   2. against a data directory seeded with SEED people (default 10000, imported for real once,
#      through the in-process engine) and a roster in which every 50th of them has a new title,
#      every 500th is missing (leaves) and the rest of the rows are new hires.
# The diff goes to /dev/null; the figures are printed as a table. Builds the release binary
# first (into CARGO_TARGET_DIR, default target/) unless TENURE_BIN names one. Needs python3.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
sizes=("$@")
if [ "${#sizes[@]}" -eq 0 ]; then
  sizes=(100000 1000000)
fi
seed="${SEED:-10000}"

if [ -z "${TENURE_BIN:-}" ]; then
  cargo build --release -p tenure >&2
  TENURE_BIN="${CARGO_TARGET_DIR:-$root/target}/release/tenure"
fi
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
unset TENURE_CONFIG TENURE_DATABASE_URL TENURE_DATA_DIR

echo "seeding $seed people into $work/seeded (real import through the engine)" >&2
python3 scripts/gen_roster.py "$seed" >"$work/seed.csv"
start=$(date +%s.%N)
"$TENURE_BIN" import "$work/seed.csv" --data-dir "$work/seeded" >/dev/null
echo "seeded in $(echo "$(date +%s.%N) - $start" | bc) s" >&2

# run LABEL ROWS FILE DATA_DIR: one measured dry run.
run() {
  local label=$1 rows=$2 file=$3 dir=$4 status=0
  /usr/bin/time -v "$TENURE_BIN" import "$file" --dry-run --confirm --data-dir "$dir" \
    >"$work/diff.txt" 2>"$work/time.txt" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "tenure import exited with $status:" >&2
    grep -v '^\s' "$work/time.txt" >&2 || true
    exit 1
  fi
  local wall rss secs
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$work/time.txt")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
  # h:mm:ss or m:ss.cc -> seconds
  secs=$(echo "$wall" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  printf '%-26s %9d rows %8.2f s %10.0f rows/s %8.1f MiB peak RSS   %s\n' \
    "$label" "$rows" "$secs" "$(echo "$rows / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)" \
    "$(grep "^events:" "$work/diff.txt")"
}

for n in "${sizes[@]}"; do
  python3 scripts/gen_roster.py "$n" >"$work/roster.csv"
  run "empty dir (all hires)" "$n" "$work/roster.csv" "$work/empty"
  # The seeded people (some changed, some gone), then new people up to n rows.
  {
    python3 scripts/gen_roster.py "$seed" --change-every 50 --drop-every 500
    python3 scripts/gen_roster.py "$((n - seed))" --first "$((seed + 1))" | tail -n +2
  } >"$work/changed.csv"
  run "seeded dir ($seed people)" "$n" "$work/changed.csv" "$work/seeded"
  rm -f "$work/roster.csv" "$work/changed.csv"
done

#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 60 s, all targets)
#
# Installs cargo-fuzz when it is missing. Fuzzing runs without a sanitizer (`-s none`: the code
# under test is safe Rust), which also works on a stable toolchain. The corpus grows in
# fuzz/corpus/TARGET (git-ignored), seeded from fuzz/seeds/TARGET; a crash is written to
# fuzz/artifacts/TARGET and makes the script fail. Set CARGO_BUILD_JOBS to limit build jobs.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
  '' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
shift $(($# > 0 ? 1 : 0))

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found: installing it" >&2
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s" >&2
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  if [ -d "fuzz/seeds/$target" ]; then
    seeds=("fuzz/seeds/$target")
  fi
  extra=()
  case "$target" in
    scim_*) extra=(-dict=fuzz/scim.dict) ;;
  esac
  cargo fuzz run -s none "$target" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 "${extra[@]}"
done
echo "fuzzing finished without crashes: ${targets[*]}" >&2

# Shared by the conformance scripts (sourced, not run): a pinned Python tool in a venv under
# the target folder, and a `tenure serve` of the debug binary on a free loopback port with a
# fresh data folder, stopped and removed when the calling script exits.

target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/tenure"
[ -x "$bin" ] || cargo build -p tenure

# python_tool NAME REQUIREMENTS COMMAND VERSION: sets `venv` to target/NAME-venv, holding
# REQUIREMENTS, installed anew unless its COMMAND already reports VERSION.
python_tool() {
    venv="$(cd "$target" && pwd)/$1-venv"
    if [ ! -x "$venv/bin/$3" ] || ! "$venv/bin/$3" --version 2>/dev/null | grep -q "$4"; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    fi
}

# start_server [SERVE ARGS...]: starts tenure with a random bootstrap admin token (`admin`)
# and sets `addr` to its base URL and `work` to a temporary folder.
work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

start_server() {
    admin="tnr_conformance_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    TENURE_BOOTSTRAP_TOKEN="$admin" RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 "$@" \
        --data-dir "$work/data" >"$work/out" 2>"$work/err" &
    pid=$!
    addr=""
    for _ in $(seq 1 600); do
        addr="$(sed -n 's/^tenure listening on //p' "$work/out")"
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "tenure serve did not start" >&2; cat "$work/err" >&2; exit 1; }
}

#!/usr/bin/env bash
# Reconciliation against real systems: `tenure bench --reconcile --target` on a throwaway
# OpenLDAP server (slapd, loopback, a temporary directory) and on a scratch database of the
# local PostgreSQL server. Each gets ACCOUNTS accounts (10,000 by default) with MEMBERSHIPS
# memberships each (5), made through tenure's own connector, one in a hundred of each kind
# drifted; one dry-run reconciliation is timed; everything made is deleted again.
#
#   cargo build --release -p tenure
#   scripts/recon_bench.sh [ACCOUNTS] [MEMBERSHIPS]
#
# Needs slapd, ldap-utils and openssl (Debian packages), and a PostgreSQL server at
# $TARGET_URL (default postgres://postgres@127.0.0.1:5432/postgres) whose user may create
# databases and roles. Run it on a quiet machine: the figures are only worth that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

accounts="${1:-10000}"
memberships="${2:-5}"
tenure="${TENURE_BIN:-target/release/tenure}"
target_url="${TARGET_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
[ -x "$tenure" ] || { echo "build first: cargo build --release -p tenure" >&2; exit 1; }
slapd_bin="$(command -v slapd || echo /usr/sbin/slapd)"
[ -x "$slapd_bin" ] || { echo "slapd is missing (apt-get install slapd ldap-utils)" >&2; exit 1; }
modules=""
for d in /usr/lib/ldap /usr/lib/x86_64-linux-gnu/ldap /usr/lib/aarch64-linux-gnu/ldap; do
    [ -e "$d/back_mdb.so" ] && modules="$d" && break
done
[ -n "$modules" ] || { echo "back_mdb.so not found" >&2; exit 1; }

dir="$(mktemp -d)"
slapd_pid=""
tag="rb$$"
db="tenure_bench_target_$$"
cleanup() {
    [ -n "$slapd_pid" ] && kill "$slapd_pid" 2>/dev/null || true
    psql -q "$target_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    for g in $(seq 0 "$memberships"); do
        psql -q "$target_url" -c "DROP ROLE IF EXISTS ${tag}_g$g" >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

# The directory: the schema the connector tests use, one throwaway admin.
suffix="dc=example,dc=com"
admin="cn=admin,$suffix"
password="throwaway-admin-secret"
mkdir "$dir/data"
cat >"$dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath $modules
moduleload back_mdb
pidfile $dir/slapd.pid
sortvals member
database mdb
maxsize 1073741824
suffix "$suffix"
rootdn "$admin"
rootpw $password
directory $dir/data
index uid eq
index member eq
access to * by * read
EOF
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ldap_url="ldap://127.0.0.1:$port"
"$slapd_bin" -f "$dir/slapd.conf" -h "$ldap_url/" -d 0 2>"$dir/slapd.log" &
slapd_pid=$!
for _ in $(seq 100); do
    ldapsearch -x -H "$ldap_url" -b "" -s base >/dev/null 2>&1 && break
    sleep 0.1
done
{
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' "$suffix"
    for ou in people disabled groups; do
        printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$suffix" "$ou"
    done
    for g in $(seq 0 "$memberships"); do
        printf 'dn: cn=g%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: g%s\nmember: cn=placeholder,%s\n\n' \
            "$g" "$suffix" "$g" "$suffix"
    done
} | ldapadd -x -H "$ldap_url" -D "$admin" -w "$password" >/dev/null

# The database: a scratch database, group roles to be members of.
psql -q "$target_url" -c "CREATE DATABASE $db" >/dev/null
for g in $(seq 0 "$memberships"); do
    psql -q "$target_url" -c "CREATE ROLE ${tag}_g$g NOLOGIN" >/dev/null
done
db_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$target_url" "$db")"

entitlements() { # system, name prefix
    for g in $(seq 0 "$memberships"); do
        printf '[[entitlements]]\nid = "%s:g%s"\nsystem = "%s"\nname = "%sg%s"\n' "$1" "$g" "$1" "$2" "$g"
    done
}
cat >"$dir/ldap.toml" <<EOF
[[systems]]
id = "dir"
connector = "ldap"
retention = "delete"
max_concurrency = 16
[systems.settings]
url = "$ldap_url"
bind_dn = "$admin"
bind_password_env = "BENCH_LDAP_PASSWORD"
users_dn = "ou=people,$suffix"
disabled_users_dn = "ou=disabled,$suffix"
groups_dn = "ou=groups,$suffix"
empty_group_member = "cn=placeholder,$suffix"
$(entitlements dir "")
EOF
cat >"$dir/postgres.toml" <<EOF
[[systems]]
id = "db"
connector = "postgres"
retention = "delete"
max_concurrency = 16
[systems.settings]
url = "$db_url"
role_prefix = "${tag}_u_"
$(entitlements db "${tag}_")
EOF

echo "== LDAP (slapd $(dpkg-query -W -f='${Version}' slapd 2>/dev/null || echo '?'))"
BENCH_LDAP_PASSWORD="$password" "$tenure" bench --reconcile --target "$dir/ldap.toml" --system dir \
    --accounts "$accounts" --memberships "$memberships"
echo
echo "== PostgreSQL ($(psql -At "$target_url" -c 'SHOW server_version'))"
"$tenure" bench --reconcile --target "$dir/postgres.toml" --system db \
    --accounts "$accounts" --memberships "$memberships"

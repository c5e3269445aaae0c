#!/usr/bin/env bash
# Installs (apt-get) and starts a local PostgreSQL server for the feedback-store tests, listening on
# 127.0.0.1 only, with one login role and one database. Safe to run again: every step checks first.
#
# Usage (as root, e.g. from .ci/run):   eval "$(.ci/postgres.sh)"
# Progress goes to stderr; stdout is only the line `export TEST_DATABASE_URL=...`.
# Overrides: PG_USER, PG_PASSWORD, PG_DATABASE, PG_PORT, PG_CLUSTER.
set -euo pipefail

PG_USER="${PG_USER:-digitbot}"
PG_PASSWORD="${PG_PASSWORD:-digitbot-test}"
PG_DATABASE="${PG_DATABASE:-digitbot_test}"
PG_PORT="${PG_PORT:-5432}"
PG_CLUSTER="${PG_CLUSTER:-main}"

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it installs packages and starts the server as the postgres user)"
    exit 1
fi
for name in "$PG_USER" "$PG_DATABASE"; do
    # Both end up inside SQL and a URL; plain identifiers keep quoting out of the picture.
    if ! [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
        log "PG_USER and PG_DATABASE must be lower-case identifiers, got '$name'"
        exit 1
    fi
done
if ! [[ "$PG_PASSWORD" =~ ^[A-Za-z0-9_.-]+$ ]]; then
    log "PG_PASSWORD may only hold letters, digits and _ . - (it goes into SQL and a URL)"
    exit 1
fi

# 1. Packages. postgresql-common's createcluster would make a cluster on install; we make our own
#    below either way, so the install step does not depend on it.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql postgresql-client >&2
fi
PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
log "PostgreSQL $PG_VERSION"

# 2. The cluster: create it if missing, then pin it to 127.0.0.1 and our port.
if ! pg_lsclusters --no-header | awk '{print $1 "/" $2}' | grep -qx "$PG_VERSION/$PG_CLUSTER"; then
    log "creating cluster $PG_VERSION/$PG_CLUSTER"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >&2
fi
changed=0
conf="/etc/postgresql/$PG_VERSION/$PG_CLUSTER/postgresql.conf"
wanted="listen_addresses = '127.0.0.1'"
# pg_conftool writes 127.0.0.1 without the quotes PostgreSQL needs, so edit the line ourselves:
# drop every active listen_addresses line and append ours once.
current="$(grep -E '^[[:space:]]*listen_addresses[[:space:]]*=' "$conf" | tail -n 1 \
    | sed -E 's/[[:space:]]*#.*$//; s/[[:space:]]+$//' || true)"
if [ "$current" != "$wanted" ]; then
    sed -i -E '/^[[:space:]]*listen_addresses[[:space:]]*=/d' "$conf"
    echo "$wanted  # set by digitbot .ci/postgres.sh" >>"$conf"
    changed=1
fi
if [ "$(pg_conftool "$PG_VERSION" "$PG_CLUSTER" show -s port 2>/dev/null || true)" != "$PG_PORT" ]; then
    pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT"
    changed=1
fi

# 3. Start it as the postgres user (pg_ctlcluster; no systemd needed), or restart on a config change.
cd /tmp  # the postgres user may not be allowed into the caller's directory
status="$(pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {print $4}')"
if [ "$status" = "online" ] && [ "$changed" = 1 ]; then
    log "restarting cluster for the new listen address / port"
    runuser -u postgres -- pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart >&2
elif [ "$status" != "online" ]; then
    log "starting cluster $PG_VERSION/$PG_CLUSTER on 127.0.0.1:$PG_PORT"
    runuser -u postgres -- pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2
fi
for _ in $(seq 1 30); do
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
        break
    fi
    sleep 1
done
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    log "server did not become ready on 127.0.0.1:$PG_PORT; see /var/log/postgresql/"
    exit 1
fi

# 4. Role and database (the password is re-set each run so a changed PG_PASSWORD takes effect).
psql_admin() { runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    log "creating role $PG_USER"
    psql_admin -c "CREATE ROLE $PG_USER LOGIN"
fi
psql_admin -c "ALTER ROLE $PG_USER WITH LOGIN PASSWORD '$PG_PASSWORD'"
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" != "1" ]; then
    log "creating database $PG_DATABASE"
    psql_admin -c "CREATE DATABASE $PG_DATABASE OWNER $PG_USER"
fi

url="postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE"
# A last check over TCP with the password, the way the tests connect.
if ! PGPASSWORD="$PG_PASSWORD" psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DATABASE" \
        -v ON_ERROR_STOP=1 -qtAc "SELECT 1" >/dev/null; then
    log "could not log in as $PG_USER over 127.0.0.1:$PG_PORT"
    exit 1
fi
log "ready"
echo "export TEST_DATABASE_URL=$url"

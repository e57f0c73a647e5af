#!/bin/sh
# PostgreSQL for the tracking server, from Debian's packages. First start (empty $PGDATA): a cluster whose
# superuser POSTGRES_USER (default mlflow) has the password in the file POSTGRES_PASSWORD_FILE (its first line, any
# characters), and the database POSTGRES_DB (default mlflow). Connections over the network need that password
# (scram-sha-256), the socket inside the container is trusted; the password never appears on a command line or in the environment.
set -eu
user=${POSTGRES_USER:-mlflow}
database=${POSTGRES_DB:-mlflow}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD_FILE:-}" ] || [ ! -r "$POSTGRES_PASSWORD_FILE" ]; then
    echo "postgres: set POSTGRES_PASSWORD_FILE to a readable file holding the password (compose: secrets)" >&2
    exit 2
  fi
  case "$user$database" in
    *[!A-Za-z0-9_-]*) echo "postgres: POSTGRES_USER and POSTGRES_DB may hold letters, digits, _ and - only" >&2; exit 2;;
  esac
  initdb --username="$user" --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # A cluster without its database is no cluster: on failure, empty $PGDATA so that the next start begins again.
  if ! echo "CREATE DATABASE \"$database\" OWNER \"$user\";" | postgres --single -D "$PGDATA" postgres >/dev/null; then
    find "$PGDATA" -mindepth 1 -delete
    echo "postgres: creating the database $database failed; the next start initialises again" >&2
    exit 1
  fi
fi
exec postgres -c listen_addresses='*' "$@"

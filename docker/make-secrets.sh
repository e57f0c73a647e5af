#!/usr/bin/env bash
# Makes the secret files docker/compose.yaml reads: the PostgreSQL password, the tracking server's admin password
# and Flask secret key, and a self-signed TLS certificate for HOST (and localhost, 127.0.0.1).
#   docker/make-secrets.sh DIR HOST        e.g. docker/make-secrets.sh docker/secrets mlflow.hospital.example
# DIR is made enterable by its owner only (0700; run this as root, who runs the containers); the files in it are
# world-readable (0644) because the containers run as their own users (postgres, uid 10002) and see only the file,
# bind-mounted, never the folder. Existing files are kept. A consortium replaces the certificate with one its CA signs; sites then need no MLFLOW_TRACKING_SERVER_CERT_PATH.
set -euo pipefail
dir=${1:?usage: make-secrets.sh DIR HOST}
host=${2:?usage: make-secrets.sh DIR HOST}
umask 022
mkdir -p "$dir"
chmod 700 "$dir"
password() { python3 -c "import secrets; print(secrets.token_urlsafe(24) + '@:/?%')"; }
for name in postgres_password mlflow_admin_password mlflow_secret_key; do
  [ -s "$dir/$name" ] || password > "$dir/$name"
done
if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then name="IP:$host"; else name="DNS:$host"; fi
if [ ! -s "$dir/tls_cert.pem" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=$host" \
    -addext "subjectAltName=$name,DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/tls_key.pem" -out "$dir/tls_cert.pem" 2> "$dir/.openssl.log" \
    || { cat "$dir/.openssl.log" >&2; echo "make-secrets: openssl could not make the certificate" >&2; exit 1; }
  rm -f "$dir/.openssl.log"
fi
chmod 644 "$dir"/*
echo "$dir"

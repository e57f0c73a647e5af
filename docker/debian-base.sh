#!/usr/bin/env bash
# Makes a Debian 12 base image from Debian's packages alone (debootstrap + podman import), for a machine that
# reaches a Debian mirror but no container registry. The image has Python 3.11 (Debian's python3, with venv) and
# the CA certificates; docker/Dockerfile builds every target on it with --build-arg BASE_IMAGE=<this tag>.
#   docker/debian-base.sh [TAG]        (default localhost/medprobe-debian:bookworm; needs root and debootstrap)
# DEBIAN_MIRROR overrides the mirror (default http://deb.debian.org/debian).
set -euo pipefail

tag=${1:-localhost/medprobe-debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/medprobe-debian.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
# What a slim base leaves out: package lists, caches, documentation.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
tar --numeric-owner -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "$tag"

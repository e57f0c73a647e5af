#!/usr/bin/env bash
# Builds medprobe's images on this machine and smoke-tests them; run as root from anywhere (`.ci/run` calls it):
#   docker/smoke.sh
# 1. podman (Debian's packages) where missing; 2. a base image: MEDPROBE_BASE_IMAGE, else the Dockerfile's pinned
# Debian image when a registry answers, else one made from Debian's packages (docker/debian-base.sh); 3. the cpu,
# mlflow-server and postgres images; 4. `medprobe --help` and `medprobe demo --subjects 8` inside, with
# --network none; 5. the fault cases of a site job in a container (each must end with exit 2 and one line);
# 6. the compose stack (PostgreSQL, the tracking server with basic auth, the site guard and TLS), two sites' jobs
# (one online, one offline then `medprobe sync`), `medprobe compare` as the consortium admin, a site refused
# when it writes the other's run, and the runs counted in PostgreSQL. Prints each step's time and the image sizes.
# Everything it makes is removed at the end (images are kept: a rerun builds only what changed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$(date +%s)
step_start=$started
declare -a report=()
step() {
  local now; now=$(date +%s)
  [ -n "${current:-}" ] && report+=("$(printf '%-52s %5d s' "$current" $((now - step_start)))")
  current=$1; step_start=$now
  echo "== $1"
}
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

# --- 1. podman ---------------------------------------------------------------------------------------------------
step "install podman (Debian packages)"
if ! command -v podman >/dev/null || ! command -v podman-compose >/dev/null || ! command -v debootstrap >/dev/null \
   || ! command -v runc >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman podman-compose buildah runc debootstrap uidmap >/dev/null
fi
# This VM's kernel limits and runtime (see README, "Containers"): only set where nobody configured podman.
if [ ! -e /etc/containers/containers.conf ]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\n' \
    > /etc/containers/containers.conf
fi
podman --version

# --- 2. base image -----------------------------------------------------------------------------------------------
step "base image"
pinned=$(sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile)
if [ -n "${MEDPROBE_BASE_IMAGE:-}" ]; then
  base=$MEDPROBE_BASE_IMAGE
elif timeout 60 podman pull -q "$pinned" >/dev/null 2>&1; then
  base=$pinned
else
  base=localhost/medprobe-debian:bookworm
  echo "no registry answered for $pinned: building $base from Debian's packages"
  podman image exists "$base" || docker/debian-base.sh "$base"
fi
echo "base: $base"

# --- 3. images -----------------------------------------------------------------------------------------------------
# pip inside the build uses this machine's package index settings and CA bundle, mounted for the build only
# (nothing of them enters an image); not for the postgres image, whose packages write /etc/ssl/certs.
build_mounts=()
for path in /etc/ssl/certs /etc/pip.conf /etc/xdg/pip /opt/pypi /opt/pypi-more /opt/wheels; do
  [ -e "$path" ] && build_mounts+=(-v "$path:$path:ro")
done
torch_args=()
if ! curl -sf --max-time 15 -o /dev/null https://download.pytorch.org/whl/cpu/torch/; then
  echo "download.pytorch.org does not answer: the cpu image takes pip's torch (a CUDA build on x86_64), TORCH_BUILD=any"
  torch_args=(--build-arg TORCH_INDEX_URL= --build-arg TORCH_BUILD=any)
fi
build() {  # TARGET TAG [more podman build arguments]
  local target=$1 tag=$2; shift 2
  podman build -q -f docker/Dockerfile --target "$target" --build-arg "BASE_IMAGE=$base" "$@" -t "$tag" . >/dev/null
}
step "build cpu image"
build cpu localhost/medprobe:cpu "${build_mounts[@]}" "${torch_args[@]}"
step "build mlflow-server image"
build mlflow-server localhost/medprobe-mlflow:3.17.2 "${build_mounts[@]}"
step "build postgres image"
build postgres localhost/medprobe-postgres:15

scratch=$(mktemp -d /var/tmp/medprobe-smoke.XXXXXX)
project=medprobe-smoke
export MEDPROBE_NETWORK=medprobe-smoke MEDPROBE_WORK_VOLUME=medprobe-smoke-work
compose=(podman-compose -p "$project" -f docker/compose.yaml)
cleanup() {
  "${compose[@]}" down -v >/dev/null 2>&1 || true
  podman volume rm -f medprobe-smoke-work medprobe-smoke-ro >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# --- 4. inside the image -------------------------------------------------------------------------------------------
step "medprobe --help (network none)"
podman run --rm --network none localhost/medprobe:cpu --help >/dev/null
step "medprobe demo --subjects 8 (network none)"
mkdir -p "$scratch/demo"
podman run --rm --network none -v "$scratch/demo:/work:U" localhost/medprobe:cpu demo --subjects 8 --no-progress \
  > "$scratch/demo.log" 2>&1 || { tail -30 "$scratch/demo.log"; fail "the demo failed in the container"; }
tail -3 "$scratch/demo.log"

# --- 5. fault cases: exit 2 and one line that says what to do -------------------------------------------------------
expect_one_line() {  # LABEL WANTED-TEXT podman-run-arguments...
  local label=$1 wanted=$2; shift 2
  set +e
  podman run --rm --network none "$@" > "$scratch/fault.out" 2> "$scratch/fault.err"
  local status=$?
  set -e
  grep -v '^$' "$scratch/fault.err" > "$scratch/fault.lines" || true
  if [ "$status" -ne 2 ] || [ "$(wc -l < "$scratch/fault.lines")" -ne 1 ] || ! grep -q -- "$wanted" "$scratch/fault.lines"; then
    cat "$scratch/fault.err" >&2
    fail "$label: wanted exit 2 and one line naming '$wanted', got exit $status"
  fi
  echo "  $label: exit 2: $(cut -c1-150 "$scratch/fault.lines")"
}
step "fault cases"
mkdir -p "$scratch/root-owned" && chmod 755 "$scratch/root-owned"
expect_one_line "root-owned bind mount" ":U" -v "$scratch/root-owned:/work" localhost/medprobe:cpu demo --subjects 8
podman volume create medprobe-smoke-ro >/dev/null
expect_one_line "arbitrary --user" "--user" --user 12345:12345 -v medprobe-smoke-ro:/work \
  localhost/medprobe:cpu demo --subjects 8
# Python falls back to the working folder for its temporary files: a writable /work is enough, an unwritable one not.
expect_one_line "read-only root, no tmpfs, /work not writable" "--tmpfs /tmp" --read-only --read-only-tmpfs=false \
  -v "$scratch/root-owned:/work" localhost/medprobe:cpu demo --subjects 8
expect_one_line "read-only /work" "read-only" --read-only -v medprobe-smoke-ro:/work:ro \
  localhost/medprobe:cpu demo --subjects 8
expect_one_line "missing spec mount" "/specs/site.yaml" localhost/medprobe:cpu run /specs/site.yaml

# --- 6. the compose stack ------------------------------------------------------------------------------------------
step "compose: secrets, PostgreSQL and the tracking server"
export MEDPROBE_SECRETS=$scratch/secrets MEDPROBE_SPECS=$scratch/specs MEDPROBE_DATA=$scratch/demo/medprobe-demo/data
export MEDPROBE_WEIGHTS=$scratch/weights MEDPROBE_BASE_IMAGE=$base
docker/make-secrets.sh "$MEDPROBE_SECRETS" mlflow >/dev/null
mkdir -p "$MEDPROBE_SPECS" "$MEDPROBE_WEIGHTS"
for site in site-a site-b; do
  cat > "$MEDPROBE_SPECS/$site.yaml" <<SPEC
name: smoke-consortium
site: $site
data:
  manifest: /data/$site/mri/manifest.csv
  modality: mri
models:
  - name: handcrafted
tasks:
  - {name: lesion, target: lesion, type: classification}
protocols:
  linear: {bootstrap: 0}
  knn: {k: [3], primary_k: 3, bootstrap: 0}
tracking:
  experiment: medprobe/smoke-consortium
workdir: /work/$site
SPEC
done
"${compose[@]}" up -d postgres mlflow >/dev/null 2>&1
server=${project}_mlflow_1
deadline=$(( $(date +%s) + 240 ))
until podman exec "$server" python /opt/tracking/serve_tracking.py --check >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] || { podman logs "$server" 2>&1 | tail -30; fail "the tracking server never became healthy"; }
  sleep 3
done
echo "tracking server healthy (its /health over HTTPS and its database)"

step "compose: accounts, site jobs, sync, compare"
# The consortium's admin makes the sites' accounts and lets both write the shared experiment (README).
declare -A passwords=([site-a]="a-$(openssl rand -hex 12)@:/?" [site-b]="b-$(openssl rand -hex 12)%#")
# Secrets reach containers through the environment (-e NAME without a value), never a command line.
SITE_A=${passwords[site-a]} SITE_B=${passwords[site-b]} podman exec -i -e SITE_A -e SITE_B "$server" python -W ignore - <<'PY'
import os
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient
os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_SERVER_CERT_PATH="/run/secrets/tls_cert",
                  MLFLOW_TRACKING_PASSWORD=open("/run/secrets/mlflow_admin_password").readline().rstrip("\n"))
uri = "https://127.0.0.1:5000"
users = get_app_client("medprobe-sites", tracking_uri=uri)
experiment = MlflowClient(uri).create_experiment("medprobe/smoke-consortium")
for site, variable in (("site-a", "SITE_A"), ("site-b", "SITE_B")):
    users.create_user(site, os.environ[variable])
    users.grant_user_permission(site, "experiment", experiment, "EDIT")
PY
site_job() {  # SITE LOG [ARGUMENTS]: the compose site-job container as SITE; its exit code (podman-compose 1.0
  # prints it as "exit code: N" and returns 0; docker compose returns it)
  local site=$1 log=$2 status=0 printed; shift 2
  MEDPROBE_SITE=$site MEDPROBE_SPEC=$site.yaml MLFLOW_TRACKING_PASSWORD=${passwords[$site]} \
    "${compose[@]}" run -T --rm --no-deps site-job "$@" > "$log" 2>&1 || status=$?
  printed=$(sed -n 's/^exit code: //p' "$log" | tail -1)
  return "${printed:-$status}"
}
site_job site-a "$scratch/site-a.log" || { tail -30 "$scratch/site-a.log"; fail "site-a's job failed"; }
if grep -q "tracking: offline" "$scratch/site-a.log"; then fail "site-a's job did not reach the server"; fi
# site-b runs offline (its bundle), then delivers it with `medprobe sync`.
site_job site-b "$scratch/site-b.log" run --no-progress --offline /specs/site-b.yaml \
  || { tail -30 "$scratch/site-b.log"; fail "site-b's offline job failed"; }
bundle=$(sed -n 's/^bundle: //p' "$scratch/site-b.log" | tail -1)
[ -n "$bundle" ] || fail "site-b's offline job named no bundle"
site_job site-b "$scratch/sync.log" sync "$bundle" --to https://mlflow:5000 \
  || { cat "$scratch/sync.log"; fail "medprobe sync failed"; }
grep "run(s) created" "$scratch/sync.log" || { cat "$scratch/sync.log"; fail "medprobe sync created no runs"; }
# A site may not write into another site's run (the site guard), even with EDIT on the experiment.
SITE_B=${passwords[site-b]} podman exec -i -e SITE_B "$server" python -W ignore - <<'PY'
import os
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
os.environ.update(MLFLOW_TRACKING_USERNAME="site-b", MLFLOW_TRACKING_PASSWORD=os.environ["SITE_B"],
                  MLFLOW_TRACKING_SERVER_CERT_PATH="/run/secrets/tls_cert")
client = MlflowClient("https://127.0.0.1:5000")
experiment = client.get_experiment_by_name("medprobe/smoke-consortium").experiment_id
run = client.search_runs([experiment], "tags.`medprobe.site` = 'site-a'", max_results=1)[0]
try:
    client.set_tag(run.info.run_id, "medprobe.site", "site-b")
except MlflowException as exc:
    assert "site guard" in str(exc), exc
    print("site-b refused on site-a's run: site guard")
else:
    raise SystemExit("site-b changed a run of site-a")
PY
MLFLOW_TRACKING_PASSWORD=$(cat "$MEDPROBE_SECRETS/mlflow_admin_password") \
podman run --rm --network "$MEDPROBE_NETWORK" -e MLFLOW_TRACKING_USERNAME=admin -e MLFLOW_TRACKING_PASSWORD \
  -e MLFLOW_TRACKING_SERVER_CERT_PATH=/run/secrets/tls_cert -v "$MEDPROBE_SECRETS/tls_cert.pem:/run/secrets/tls_cert:ro" \
  localhost/medprobe:cpu compare --experiment medprobe/smoke-consortium --tracking-uri https://mlflow:5000 \
  --out /tmp/compare --no-log > "$scratch/compare.log" 2>&1 || { cat "$scratch/compare.log"; fail "compare failed"; }
grep -q "site-a" "$scratch/compare.log" && grep -q "site-b" "$scratch/compare.log" \
  || { cat "$scratch/compare.log"; fail "compare does not show both sites"; }
head -8 "$scratch/compare.log"
finished=$(podman exec ${project}_postgres_1 psql -U mlflow -d mlflow -tAc \
  "SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'medprobe.site'
   WHERE r.status = 'FINISHED'")
echo "finished site runs in PostgreSQL: $finished"
[ "$finished" -ge 6 ] || fail "expected at least 6 finished site runs in PostgreSQL, found $finished"

step "done"
echo
echo "step times"
printf '  %s\n' "${report[@]}"
echo "image sizes"
for image in localhost/medprobe:cpu localhost/medprobe-mlflow:3.17.2 localhost/medprobe-postgres:15 "$base"; do
  printf '  %-60s %6.2f GB\n' "$image" "$(podman image inspect --format '{{.Size}}' "$image" | awk '{print $1/1e9}')"
done
echo "total $(( $(date +%s) - started )) s"

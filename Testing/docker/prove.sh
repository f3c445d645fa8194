#!/usr/bin/env bash
# Build the project's unmodified Dockerfile on a real Docker engine and run it: --help, a batch job on a tiny
# cohort (outputs checked), and the same job again as a non-root --user with a named cache volume, where the
# second run must reuse every feature, metric table and segmentation and give byte-identical tables.
#
# Run by `make test` after the unit tests. No image registry is reachable here, so the base image is a
# Debian root file system made with debootstrap and `docker import`ed (python3 with venv and headers, the
# host's CA bundle for pip); torch comes from the host's wheel folder (/opt/wheels) over a local HTTP server.
# Where Docker cannot be installed or started, it prints "prove.sh: SKIPPED: <reason>" and exits 0.
# GENMEDEVAL_PROVE_DOCKER=0 skips it on purpose. Everything it starts (dockerd, the wheel server) is
# stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
IMAGE=genmedeval:prove
BASE=genmedeval-base:local
VOLUME=genmedeval-prove-cache
WORK="${GENMEDEVAL_PROVE_WORK:-/var/tmp/genmedeval-prove}"
ROOTFS="$WORK/rootfs"
WHEELS="${GENMEDEVAL_PROVE_WHEELS:-/opt/wheels}"
CA_BUNDLE="${GENMEDEVAL_PROVE_CA:-/etc/ssl/certs/ca-certificates.crt}"
STARTED_DOCKERD=""
WHEEL_SERVER=""
START=$(date +%s)

say() { echo "prove.sh: $*"; }
skip() { say "SKIPPED: $*"; exit 0; }
fail() { say "FAILED: $*" >&2; exit 1; }
seconds_since() { echo $(( $(date +%s) - $1 )); }

cleanup() {
    [ -n "$WHEEL_SERVER" ] && kill "$WHEEL_SERVER" 2>/dev/null || true
    if [ -n "$STARTED_DOCKERD" ]; then
        docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
        kill "$STARTED_DOCKERD" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
    fi
}
trap cleanup EXIT

[ "${GENMEDEVAL_PROVE_DOCKER:-1}" = "0" ] && skip "GENMEDEVAL_PROVE_DOCKER=0"

# -- a Docker engine ------------------------------------------------------------------------------------
install_packages() {
    command -v apt-get >/dev/null || return 1
    [ "$(id -u)" = 0 ] || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$WORK/apt.log" 2>&1 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$WORK/apt.log" 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$WORK/apt.log" 2>&1; }
}

start_engine() {
    docker info >/dev/null 2>&1 && return 0
    if ! command -v dockerd >/dev/null; then
        install_packages docker.io || return 1
    fi
    mkdir -p "$WORK/exec"
    dockerd --iptables=false --bridge=none --storage-driver=overlay2 --exec-root="$WORK/exec" \
        --pidfile="$WORK/dockerd.pid" >"$WORK/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$STARTED_DOCKERD" 2>/dev/null || return 1
        sleep 1
    done
    return 1
}

mkdir -p "$WORK"
start_engine || skip "no Docker engine could be installed or started (see $WORK/dockerd.log, $WORK/apt.log)"
say "engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null) ($(docker info --format '{{.Driver}}' 2>/dev/null))"

# -- the base image: Debian bookworm with python3 (3.11, as the torch wheel), venv and headers -------------
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    t0=$(date +%s)
    command -v debootstrap >/dev/null || install_packages debootstrap || skip "debootstrap cannot be installed"
    if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
        rm -rf "$ROOTFS"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-dev,ca-certificates \
            bookworm "$ROOTFS" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
            || fail "debootstrap failed (see $WORK/debootstrap.log)"
    fi
    cp "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"  # pip reaches the index only with it
    tar -C "$ROOTFS" -c . | docker import \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    say "base image $BASE made in $(seconds_since "$t0") s"
fi

# -- the project's Dockerfile, as it is ------------------------------------------------------------------
BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE")
if ls "$WHEELS"/torch-2.13.0*.whl >/dev/null 2>&1; then
    PORT="${GENMEDEVAL_PROVE_PORT:-38517}"  # fixed: the URL is a build argument, part of the layer cache's key
    python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WHEELS" >"$WORK/wheels.log" 2>&1 &
    WHEEL_SERVER=$!
    sleep 1
    BUILD_ARGS+=(--build-arg "TORCH_FIND_LINKS=http://127.0.0.1:$PORT/")
fi
t0=$(date +%s)
DOCKER_BUILDKIT=0 docker build --network host "${BUILD_ARGS[@]}" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log"; fail "docker build failed (see $WORK/build.log)"; }
BUILD_S=$(seconds_since "$t0")
SIZE_MB=$(( $(docker image inspect --format '{{.Size}}' "$IMAGE") / 1000000 ))
BASE_MB=$(( $(docker image inspect --format '{{.Size}}' "$BASE") / 1000000 ))
say "built $IMAGE in $BUILD_S s: $SIZE_MB MB (base $BASE_MB MB)"

# -- runs ----------------------------------------------------------------------------------------------
DATA="$WORK/data"
rm -rf "$DATA" && mkdir -p "$DATA" && chmod 0777 "$DATA"
docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
run() { docker run --rm --network none -v "$VOLUME:/cache" -v "$DATA:/data" "$@"; }

run "$IMAGE" --help | grep -q "batch" || fail "--help does not list the batch command"
[ "$(docker image inspect --format '{{.Config.User}}' "$IMAGE")" = "genmedeval" ] || fail "the image does not run as genmedeval"
run "$IMAGE" cohort /data/cohort --n 8 --spacing 4 >"$WORK/cohort.log" 2>&1 || { cat "$WORK/cohort.log"; fail "cohort failed in the container"; }
cat >"$DATA/job.yaml" <<'EOF'
name: prove
encoder: domain
metrics: [fd, kd, prdc, fd_roi, boundary]
bootstrap: 5
slices: {max_slices: 4, tumour_slices: 2}
sets:
  reference: {folder: cohort/images, split: reference}
  evaluated: {folder: cohort/images, split: eval}
  train: {folder: cohort/images, split: train}
run: [metrics, quality, sweep]
sweep: {perturbations: {gaussian_noise: ["0.05"], boundary_blur: ["1"]}}
outputs: {folder: OUT, scene: true, scene_volumes: 2, report: true}
EOF
sed 's/OUT/first/' "$DATA/job.yaml" >"$DATA/first.yaml"
sed 's/OUT/second/' "$DATA/job.yaml" >"$DATA/second.yaml"

t0=$(date +%s)
run --user 1000:1000 "$IMAGE" batch first.yaml >"$WORK/first.log" 2>&1 || { cat "$WORK/first.log"; fail "batch job failed"; }
FIRST_S=$(seconds_since "$t0")
for f in metrics.csv metrics.json quality.csv scene.mrb batch.log sweep/upstream.csv sweep/report.html; do
    [ -s "$DATA/first/$f" ] || fail "the batch job wrote no $f"
done
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }
[ "$(json "$DATA/first/batch.json" "d['work']['forward_passes'] > 0")" = True ] || fail "the first run encoded nothing"
[ "$(stat -c %u "$DATA/first/metrics.csv")" = 1000 ] || fail "outputs are not owned by the --user"

t0=$(date +%s)
run --user 1000:1000 "$IMAGE" batch second.yaml >"$WORK/second.log" 2>&1 || { cat "$WORK/second.log"; fail "second batch job failed"; }
SECOND_S=$(seconds_since "$t0")
WORK_SECOND=$(json "$DATA/second/batch.json" "d['work']")
[ "$(json "$DATA/second/batch.json" "sum(d['work'].values())")" = 0 ] \
    || fail "the second run with the named cache computed again: $WORK_SECOND"
(cd "$DATA/first" && find . -name '*.csv' -o -name '*.json' | grep -v -e batch.json -e sweep/run.json -e sweep/reuse.json | sort) \
    >"$WORK/tables.txt"
while read -r table; do
    cmp -s "$DATA/first/$table" "$DATA/second/$table" || fail "$table differs between the two runs"
done <"$WORK/tables.txt"
say "batch job: first run $FIRST_S s; second run (named cache volume, --user 1000:1000) $SECOND_S s, work $WORK_SECOND;" \
    "$(wc -l <"$WORK/tables.txt") tables byte-identical"

# -- the slim variant: no Slicer wheels, no FRD, no GL stack; the same job without the scene --------------
t0=$(date +%s)
DOCKER_BUILDKIT=0 docker build --network host "${BUILD_ARGS[@]}" --build-arg EXTRAS=dask \
    --build-arg RUNTIME_PACKAGES=libgomp1 -t "$IMAGE-slim" "$ROOT" >"$WORK/build-slim.log" 2>&1 \
    || { tail -30 "$WORK/build-slim.log"; fail "docker build of the slim variant failed (see $WORK/build-slim.log)"; }
SLIM_BUILD_S=$(seconds_since "$t0")
SLIM_MB=$(( $(docker image inspect --format '{{.Size}}' "$IMAGE-slim") / 1000000 ))
sed 's/OUT/slim/; s/scene: true/scene: false/' "$DATA/job.yaml" >"$DATA/slim.yaml"
run --user 1000:1000 "$IMAGE-slim" batch first.yaml >"$WORK/slim-scene.log" 2>&1 \
    && fail "the slim image accepted a job that asks for a scene bundle"
grep -q "outputs.scene" "$WORK/slim-scene.log" || { cat "$WORK/slim-scene.log"; fail "no clear message for the scene"; }
run --user 1000:1000 "$IMAGE-slim" batch slim.yaml >"$WORK/slim.log" 2>&1 || { cat "$WORK/slim.log"; fail "slim batch job failed"; }
for table in metrics.csv quality.csv sweep/upstream.csv sweep/downstream.csv; do
    cmp -s "$DATA/first/$table" "$DATA/slim/$table" || fail "$table differs between the full and the slim image"
done
say "slim variant: built in $SLIM_BUILD_S s, $SLIM_MB MB; its tables equal the full image's"
say "PASSED in $(seconds_since "$START") s (image $SIZE_MB MB, slim $SLIM_MB MB, build $BUILD_S s)"

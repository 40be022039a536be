#!/usr/bin/env bash
# Builds the container image and smoke-tests it against loopback Asana and DocSpace fakes
# (examples/container_smoke.rs): health check, handshake, signed delivery -> DocSpace invitation,
# non-root PID 1, JSON logs, SIGTERM stop under 2 s with exit code 0, image size under 120 MB.
#
#   scripts/container-smoke.sh [run|compose|all]     (default: all)
#
# run:     `<engine> run --network host IMAGE`
# compose: `podman-compose` / `docker compose` with docker-compose.yml + docker-compose.hostnet.yml
#
# Uses podman or docker, whichever is installed (SMOKE_ENGINE=podman|docker to choose). With podman,
# when ../shared/tools/local-base-images exists (machines without a container registry), it runs it
# first to install podman and build local stand-ins of the base images; it is idempotent. The build
# uses the layer cache. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case "$mode" in
    run | compose) modes=("$mode") ;;
    all) modes=(run compose) ;;
    *)
        echo "usage: $0 [run|compose|all]" >&2
        exit 2
        ;;
esac

IMAGE=${SMOKE_IMAGE:-asana-docspace-bridge:smoke}
LOCAL_BASE_IMAGES=../shared/tools/local-base-images
started=$(date +%s)

step() { printf '\n== %s\n' "$*"; }

engine=${SMOKE_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null; then
        engine=podman
    elif [ -f "$LOCAL_BASE_IMAGES" ]; then
        engine=podman # local-base-images installs it
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        engine=docker # a docker client alone (no engine) is not enough
    else
        echo "error: neither podman nor a running docker engine is available" >&2
        exit 1
    fi
fi
case "$engine" in
    podman | docker) ;;
    *)
        echo "error: SMOKE_ENGINE must be podman or docker, not $engine" >&2
        exit 2
        ;;
esac

build_args=()
if [ "$engine" = podman ]; then
    if [ -f "$LOCAL_BASE_IMAGES" ]; then
        step "local base images ($LOCAL_BASE_IMAGES)"
        bash "$LOCAL_BASE_IMAGES"
        # The stand-ins exist only locally: never try a registry for them.
        build_args+=(--pull=never)
    fi
    # Without the docker format, podman drops HEALTHCHECK from the image.
    build_args+=(--format docker)
fi

step "build $IMAGE with $engine"
build_started=$(date +%s)
"$engine" build "${build_args[@]}" -t "$IMAGE" .
build_secs=$(($(date +%s) - build_started))
echo "built $IMAGE in ${build_secs} s"

compose_cmd=""
if [[ " ${modes[*]} " == *" compose "* ]]; then
    if [ "$engine" = podman ]; then
        if ! command -v podman-compose >/dev/null; then
            step "install podman-compose"
            python3 -m pip install --quiet --disable-pip-version-check podman-compose
            hash -r
        fi
        compose_cmd=podman-compose
    else
        if ! docker compose version >/dev/null 2>&1; then
            echo "error: compose mode needs the docker compose plugin" >&2
            exit 1
        fi
        compose_cmd="docker compose"
    fi
fi

step "build the smoke test (examples/container_smoke.rs)"
cargo build --example container_smoke

for m in "${modes[@]}"; do
    step "smoke test: $m mode"
    mode_started=$(date +%s)
    smoke_args=(--engine "$engine" --image "$IMAGE" --mode "$m")
    if [ "$m" = compose ]; then smoke_args+=(--compose "$compose_cmd"); fi
    cargo run --quiet --example container_smoke -- "${smoke_args[@]}"
    echo "$m mode took $(($(date +%s) - mode_started)) s"
done

echo
echo "container smoke: ${modes[*]} passed with $engine (image build ${build_secs} s, total $(($(date +%s) - started)) s)"

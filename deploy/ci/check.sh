#!/usr/bin/env bash
# Checks of the deployment and operations files (deploy/, .github/, .dockerignore).
#
# Called by the CI runner (.ci/run) and by the "deployment files" job of
# .github/workflows/ci-cd.yml; runs the same on a developer machine:
#
#   bash deploy/ci/check.sh
#
# Installs what it needs when missing, idempotently and quietly: shellcheck (and, only if
# absent, kubectl, python3-venv and the PostgreSQL client) from Debian/Ubuntu packages;
# promtool extracted from the Debian "prometheus" package without installing it; the Python
# tools of deploy/ci/requirements.txt into a venv under the cache directory (never the
# repository). Needs no Docker engine and reaches no host but the package registries.
#
# Checks: YAML/JSON parse; shellcheck; hadolint; actionlint; `kubectl kustomize` of base,
# both overlays, the logging stack and two variants (production with canary, production with
# in-pod TLS); schema (kubernetes-validate, strict) + reference + policy validation of every
# rendered object (deploy/ci/validate_manifests.py: custom resources are checked there on
# purpose, see its docstring); the rollout smoke test against stand-in servers
# (deploy/ci/smoke_selftest.py); promtool check + unit tests of the alert rules, promtool
# check of the dashboard and analysis PromQL; the scripts' usage handling; deploy.sh's image
# pinning; and a real backup -> restore -> compare round trip against PostgreSQL
# (deploy/ci/backup-roundtrip.sh; skipped when no server is reachable, unless
# FLOWABLE_UI_CI_REQUIRE_PG=1).
#
# Environment: FLOWABLE_UI_CI_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/flowable-ui-ci),
# FLOWABLE_UI_CI_REQUIRE_PG=1, PGHOST/PGPORT/PGUSER for the round trip, K8S_VERSIONS.
# Exit status: 0 when every check passed, 1 otherwise. The last line sums up:
#   deploy-checks: N passed, N failed, N skipped
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${FLOWABLE_UI_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/flowable-ui-ci}"
VENV="${CACHE}/venv"
BIN="${CACHE}/bin"
K8S_VERSIONS="${K8S_VERSIONS:-1.30 1.34}"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

started=${SECONDS}
passed=0; failed=0; skipped=0
failures=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flowable-ui-check.XXXXXX")"
trap 'rm -rf -- "${WORK}"' EXIT

say() { printf '%s\n' "$*"; }
die() { printf 'deploy-checks: setup failed: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------------------------------
# setup

apt_updated=0
apt_update_once() {
    if [[ ${apt_updated} -eq 0 ]]; then
        as_root apt-get update -qq >/dev/null || die "apt-get update failed"
        apt_updated=1
    fi
}

ensure_apt_packages() {
    local missing=()
    command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
    command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    say "installing Debian packages: ${missing[*]}"
    if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt_update_once
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    fi
}

# promtool is one static binary inside Debian's prometheus package: download the package
# and take the binary out, without installing the server or its service.
ensure_promtool() {
    [[ -x "${BIN}/promtool" ]] && "${BIN}/promtool" --version >/dev/null 2>&1 && return 0
    say "extracting promtool from the Debian prometheus package"
    mkdir -p "${BIN}"
    local dl="${WORK}/promtool-dl"
    mkdir -p "${dl}"
    if ! (cd "${dl}" && apt-get download -qq prometheus >/dev/null 2>&1); then
        apt_update_once
        (cd "${dl}" && apt-get download -qq prometheus >/dev/null 2>&1) \
            || die "apt-get download prometheus failed"
    fi
    dpkg-deb -x "${dl}"/prometheus_*.deb "${dl}/x" || die "cannot unpack the prometheus package"
    install -m 0755 "${dl}/x/usr/bin/promtool" "${BIN}/promtool"
}

ensure_venv() {
    local req="${ROOT}/deploy/ci/requirements.txt" stamp want
    want="$(cat "${req}"; python3 --version 2>&1)"
    stamp="${VENV}/.requirements-stamp"
    if [[ -x "${VENV}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
        return 0
    fi
    say "creating the tool venv in ${VENV}"
    rm -rf -- "${VENV}"
    mkdir -p "${CACHE}"
    python3 -m venv "${VENV}" || die "python3 -m venv failed"
    "${VENV}/bin/pip" install -q -r "${req}" >"${WORK}/pip.log" 2>&1 \
        || { cat "${WORK}/pip.log" >&2; die "pip install -r deploy/ci/requirements.txt failed"; }
    printf '%s' "${want}" >"${stamp}"
}

ensure_apt_packages
ensure_promtool
ensure_venv
export PATH="${VENV}/bin:${BIN}:${PATH}"
for tool in kubectl shellcheck hadolint actionlint promtool kubernetes-validate; do
    command -v "${tool}" >/dev/null 2>&1 || die "${tool} is not available after setup"
done
kubectl kustomize --help >/dev/null 2>&1 || die "this kubectl has no 'kustomize' subcommand"
# The overlays use Components and the `labels` field: kustomize v5 (kubectl >= 1.27).
# Debian bookworm's own kubernetes-client (1.20, kustomize v2) is too old for them.
kustomize_version="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v//p')"
[[ "${kustomize_version%%.*}" =~ ^[0-9]+$ && "${kustomize_version%%.*}" -ge 5 ]] \
    || die "kubectl's built-in kustomize is '${kustomize_version:-unknown}', need v5 or newer (kubectl >= 1.27)"
say "tools: kubectl $(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p'), $(shellcheck --version | sed -n 's/^version: /shellcheck /p'), $(hadolint --version | head -n1), $(actionlint -version | head -n1), $(promtool --version 2>&1 | head -n1 | cut -d' ' -f1-3), kubernetes-validate $(kubernetes-validate --version)"

# ---------------------------------------------------------------------------------------
# checks

# check NAME COMMAND...: run, record, print the output only on failure.
check() {
    local name="$1"; shift
    local log="${WORK}/check.log" t0=${SECONDS} rc=0
    "$@" >"${log}" 2>&1 || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        passed=$((passed + 1)); say "PASS  ${name} ($((SECONDS - t0))s)"
    elif [[ ${rc} -eq 77 ]]; then
        skipped=$((skipped + 1)); say "SKIP  ${name}: $(tail -n 1 "${log}")"
    else
        failed=$((failed + 1)); failures+=("${name}")
        say "FAIL  ${name} (exit ${rc})"
        sed 's/^/      /' "${log}" | tail -n 80
    fi
}

cd "${ROOT}"
shopt -s nullglob

check "shellcheck deploy/scripts deploy/ci" shellcheck -x deploy/scripts/*.sh deploy/ci/*.sh
check "hadolint deploy/Dockerfile" hadolint deploy/Dockerfile
check "actionlint .github/workflows" actionlint -color=false -shellcheck="$(command -v shellcheck)" .github/workflows/*.yml

dockerignore_check() {
    [[ -f .dockerignore ]] || { echo ".dockerignore missing"; return 1; }
    local must in_context
    for must in target/ .git/ .env; do
        grep -qx "${must}" .dockerignore || { echo ".dockerignore does not exclude ${must}"; return 1; }
    done
    # What the image build needs must stay in the context (deploy/config: the profile
    # files are compiled in).
    for in_context in Cargo.toml Cargo.lock migrations .sqlx deploy deploy/config; do
        if grep -Eqx "/?${in_context}/?" .dockerignore; then
            echo ".dockerignore excludes ${in_context}, which the build needs"; return 1
        fi
    done
}
check ".dockerignore" dockerignore_check

# Variants that no overlay renders by default, built from a copy of deploy/.
make_variants() {
    local v="${WORK}/deploy/k8s/overlays"
    cp -R deploy "${WORK}/deploy" || return 1
    cp -R "${v}/production" "${v}/production-canary" || return 1
    sed -i 's#^  - ../../components/rollout-bluegreen$#  - ../../components/rollout-canary#' \
        "${v}/production-canary/kustomization.yaml" || return 1
    grep -q '^  - ../../components/rollout-canary$' "${v}/production-canary/kustomization.yaml" || return 1
    cp -R "${v}/production" "${v}/production-in-pod-tls" || return 1
    sed -i 's#^  - ../../components/rollout-bluegreen$#&\n  - ../../components/in-pod-tls#' \
        "${v}/production-in-pod-tls/kustomization.yaml" || return 1
    grep -q '^  - ../../components/in-pod-tls$' "${v}/production-in-pod-tls/kustomization.yaml"
}
check "variants (production+canary, production+in-pod-tls)" make_variants

rendered=()
render() { # name dir
    local out="${WORK}/render-${1//\//_}.yaml"
    kubectl kustomize "$2" >"${out}" || return 1
    [[ -s "${out}" ]] || { echo "rendered nothing"; return 1; }
    rendered+=("--rendered" "$1=${out}")
    echo "$(grep -c '^kind:' "${out}") objects"
}
render_check() { check "kubectl kustomize ${3:-$2}" render "$1" "$2"; }
render_check base deploy/k8s/base
render_check overlays/staging deploy/k8s/overlays/staging
render_check overlays/production deploy/k8s/overlays/production
render_check logging deploy/k8s/logging
render_check variant/production-canary "${WORK}/deploy/k8s/overlays/production-canary" \
    "(variant) production with canary"
render_check variant/production-in-pod-tls "${WORK}/deploy/k8s/overlays/production-in-pod-tls" \
    "(variant) production with in-pod TLS"

k8s_version_args=()
for v in ${K8S_VERSIONS}; do k8s_version_args+=(--k8s-version "${v}"); done
check "manifests: schemas (strict), custom resources, references, policy, metrics, links" \
    python deploy/ci/validate_manifests.py --root "${ROOT}" "${k8s_version_args[@]}" \
        "${rendered[@]}" --promql-out "${WORK}/promql-rules.yml"

check "rollout smoke test (flowable-ui-smoke) against stand-in servers" \
    python deploy/ci/smoke_selftest.py "${WORK}/render-overlays_production.yaml"

promtool_alerts() {
    mkdir -p "${WORK}/prom" || return 1
    python - "${ROOT}/deploy/prometheus/alerts.yml" "${WORK}/prom/alerts.rules.yml" <<'PY' || return 1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
assert doc["kind"] == "PrometheusRule", "alerts.yml must be a PrometheusRule"
yaml.safe_dump(doc["spec"], open(sys.argv[2], "w"), sort_keys=False)
PY
    cp deploy/prometheus/alerts.test.yml "${WORK}/prom/" || return 1
    promtool check rules "${WORK}/prom/alerts.rules.yml" || return 1
    (cd "${WORK}/prom" && promtool test rules alerts.test.yml)
}
check "promtool: alert rules check + unit tests" promtool_alerts
check "promtool: dashboard and analysis PromQL" promtool check rules "${WORK}/promql-rules.yml"

usage_check() {
    local s rc
    for s in backup-database restore-database deploy; do
        bash "deploy/scripts/${s}.sh" --help >/dev/null || { echo "${s}.sh --help failed"; return 1; }
        rc=0; bash "deploy/scripts/${s}.sh" --no-such-option >/dev/null 2>&1 || rc=$?
        [[ ${rc} -eq 2 ]] || { echo "${s}.sh with a bad option exited ${rc}, expected 2"; return 1; }
    done
    rc=0; bash deploy/scripts/restore-database.sh >/dev/null 2>&1 || rc=$?
    [[ ${rc} -eq 2 ]] || { echo "restore-database.sh without a file exited ${rc}, expected 2"; return 1; }
}
check "scripts: --help and usage errors" usage_check

deploy_render_check() {
    local digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef env out
    for env in staging production; do
        out="$(bash deploy/scripts/deploy.sh render "${env}" "ghcr.io/acme/flowable-ui@${digest}")"
        [[ "$(grep -c "image: ghcr.io/acme/flowable-ui@${digest}" <<<"${out}")" -eq 2 ]] \
            || { echo "${env}: the server and migration images are not pinned to the digest"; return 1; }
        if grep -q 'image: ghcr.io/example-org/' <<<"${out}"; then
            echo "${env}: placeholder image left"; return 1
        fi
    done
    [[ -z "$(git status --porcelain -- deploy 2>/dev/null | grep -v '^??' || true)" ]] \
        || { echo "deploy.sh render modified the work tree"; return 1; }
}
check "deploy.sh render pins the image by digest" deploy_render_check

roundtrip() {
    local rc=0
    bash deploy/ci/backup-roundtrip.sh || rc=$?
    if [[ ${rc} -eq 77 && "${FLOWABLE_UI_CI_REQUIRE_PG:-0}" == 1 ]]; then
        echo "PostgreSQL required (FLOWABLE_UI_CI_REQUIRE_PG=1) but not reachable"; return 1
    fi
    return "${rc}"
}
check "backup -> restore -> compare against PostgreSQL" roundtrip

say "deploy-checks finished in $((SECONDS - started))s"
if [[ ${failed} -gt 0 ]]; then
    say "failed: ${failures[*]}"
fi
say "deploy-checks: ${passed} passed, ${failed} failed, ${skipped} skipped"
[[ ${failed} -eq 0 ]]

#!/usr/bin/env bash
# Release flowable-ui to a Kubernetes environment, in the order the service needs:
#   1. render the overlay with the image pinned (by digest),
#   2. apply everything but the workload (namespace, config, services, ingress, analysis...),
#   3. [production] take a backup (a Job from the backup CronJob),
#   4. run the migration Job (`flowable-ui migrate`) and wait for it,
#   5. apply the workload (Deployment template, Rollout, HPA),
#   6. wait: staging until the canary is through; production until the blue-green preview
#      is up and waiting for promotion (then `promote`).
# Used by .github/workflows/ci-cd.yml and rollback.yml, and by hand (deploy/README.md#deploying).
set -euo pipefail

readonly SCRIPT_NAME="${0##*/}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly ROOT

usage() {
    cat <<EOF
Usage:
  ${SCRIPT_NAME} render   ENV IMAGE     print the manifests for ENV with IMAGE, apply nothing
  ${SCRIPT_NAME} deploy   ENV IMAGE     release IMAGE to ENV (steps above)
  ${SCRIPT_NAME} promote  ENV [--full]  promote a paused blue-green/canary rollout and wait
  ${SCRIPT_NAME} rollback ENV REVISION [--full]
                                        return to a Rollout revision (0 = the previous one),
                                        promote it and wait; Deployment-only clusters use
                                        kubectl rollout undo
  ${SCRIPT_NAME} status   ENV           show the rollout

ENV is staging or production. IMAGE is REPOSITORY@sha256:DIGEST (preferred) or REPOSITORY:TAG.
--full skips the remaining steps and analysis (emergencies only).

Environment: KUBECTL (default kubectl), KUBE_CONTEXT (optional), TIMEOUT_MIGRATION (900 s),
TIMEOUT_ROLLOUT (3600 s), SKIP_BACKUP=1 (production: no pre-deploy backup),
RUNBOOK_BASE_URL (URL of deploy/README.md in your repository, for the alerts' runbook links).
Needs kubectl, and the kubectl-argo-rollouts plugin for promote/rollback of Rollouts.
EOF
}

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "${SCRIPT_NAME}" "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }

KUBECTL="${KUBECTL:-kubectl}"
TIMEOUT_MIGRATION="${TIMEOUT_MIGRATION:-900}"
TIMEOUT_ROLLOUT="${TIMEOUT_ROLLOUT:-3600}"
readonly APP=flowable-ui
# The runbook links in deploy/prometheus/alerts.yml and the dashboard use this base;
# RUNBOOK_BASE_URL (set by the CI/CD workflow to this repository) replaces it at render time.
readonly RUNBOOK_PLACEHOLDER=https://github.com/flowable-ui/flowable-ui/blob/main/deploy/README.md

k() {
    if [[ -n "${KUBE_CONTEXT:-}" ]]; then
        "${KUBECTL}" --context "${KUBE_CONTEXT}" -n "${NAMESPACE}" "$@"
    else
        "${KUBECTL}" -n "${NAMESPACE}" "$@"
    fi
}

select_env() {
    case "$1" in
        staging) NAMESPACE=flowable-staging; OVERLAY=staging ;;
        production|prod) NAMESPACE=flowable-prod; OVERLAY=production ;;
        *) die "unknown environment '$1' (staging or production)" 2 ;;
    esac
}

has_rollout() { k get rollouts.argoproj.io "${APP}" >/dev/null 2>&1; }

# Render the overlay with the image replaced, without touching the work tree: the deploy/
# tree is copied and the copy's `images:` entry (newName/newTag) rewritten.
render() {
    local image="$1" name ref tmp kfile
    if [[ "${image}" == *@sha256:* ]]; then
        name="${image%@*}"; ref="digest: ${image#*@}"
    elif [[ "${image##*/}" == *:* ]]; then
        name="${image%:*}"; ref="newTag: \"${image##*:}\""
    else
        die "IMAGE must be REPOSITORY@sha256:DIGEST or REPOSITORY:TAG, got '${image}'" 2
    fi
    tmp="$(mktemp -d)"
    cp -R "${ROOT}/deploy" "${tmp}/deploy"
    kfile="${tmp}/deploy/k8s/overlays/${OVERLAY}/kustomization.yaml"
    if ! grep -q '^    newName: ' "${kfile}" || ! grep -q '^    newTag: ' "${kfile}"; then
        die "${kfile#"${tmp}/"} has no images entry with newName/newTag to replace"
    fi
    sed -i -e "s#^    newName: .*#    newName: ${name}#" -e "s#^    newTag: .*#    ${ref}#" "${kfile}"
    if [[ -n "${RUNBOOK_BASE_URL:-}" ]]; then
        # Point the alerts' runbook_url annotations at this repository's copy of the README.
        grep -rl "${RUNBOOK_PLACEHOLDER}" "${tmp}/deploy" | xargs -r sed -i "s#${RUNBOOK_PLACEHOLDER}#${RUNBOOK_BASE_URL}#g"
    fi
    "${KUBECTL}" kustomize "${tmp}/deploy/k8s/overlays/${OVERLAY}"
    rm -rf -- "${tmp}"
}

# Split a rendered multi-document stream by kind into three files.
split_manifests() { # rendered, dir
    awk -v dir="$2" '
        function flush() {
            if (doc == "") return
            file = dir "/pre.yaml"
            if (kind == "Job") file = dir "/migrate.yaml"
            else if (kind == "Deployment" || kind == "Rollout" || kind == "HorizontalPodAutoscaler") file = dir "/workload.yaml"
            printf "---\n%s", doc >> file
            doc = ""; kind = ""
        }
        /^---$/ { flush(); next }
        /^kind: / { kind = $2 }
        { doc = doc $0 "\n" }
        END { flush() }
    ' "$1"
}

wait_job() { # name, timeout seconds
    local name="$1" deadline=$((SECONDS + $2)) state
    while (( SECONDS < deadline )); do
        state="$(k get job "${name}" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)"
        case " ${state} " in
            *" Complete "*) log "job ${name} complete"; return 0 ;;
            *" Failed "*) k logs "job/${name}" --all-containers --tail=200 >&2 || true
                          die "job ${name} failed" ;;
        esac
        sleep 5
    done
    k logs "job/${name}" --all-containers --tail=200 >&2 || true
    die "job ${name} did not finish within $2 s"
}

check_secrets() {
    local missing=()
    for s in flowable-ui-database flowable-ui-nats flowable-ui-jwt; do
        k get secret "${s}" >/dev/null 2>&1 || missing+=("${s}")
    done
    [[ ${#missing[@]} -eq 0 ]] \
        || die "missing secrets in ${NAMESPACE}: ${missing[*]} (see deploy/k8s/secrets/README.md)"
}

wait_rollout() { # mode: complete | paused
    local mode="$1" deadline=$((SECONDS + TIMEOUT_ROLLOUT)) phase message last=""
    if ! has_rollout; then
        k rollout status "deployment/${APP}" --timeout="${TIMEOUT_ROLLOUT}s"
        return
    fi
    while (( SECONDS < deadline )); do
        phase="$(k get rollouts.argoproj.io "${APP}" -o jsonpath='{.status.phase}')"
        message="$(k get rollouts.argoproj.io "${APP}" -o jsonpath='{.status.message}')"
        if [[ "${phase} ${message}" != "${last}" ]]; then
            log "rollout: ${phase}${message:+ - ${message}}"; last="${phase} ${message}"
        fi
        case "${phase}" in
            Healthy) return 0 ;;
            Degraded) die "rollout degraded: ${message} (Argo Rollouts aborted; the stable version keeps serving)" ;;
            Paused) [[ "${mode}" == paused ]] && return 0 ;;
        esac
        sleep 10
    done
    die "rollout not finished within ${TIMEOUT_ROLLOUT} s"
}

cmd_deploy() {
    local image="$1" work
    work="$(mktemp -d)"
    trap 'rm -rf -- "${work}"' RETURN
    render "${image}" >"${work}/all.yaml"
    split_manifests "${work}/all.yaml" "${work}"
    [[ -s "${work}/migrate.yaml" && -s "${work}/workload.yaml" ]] || die "unexpected render: no migration Job or workload"

    log "applying configuration, services, ingress and analysis to ${NAMESPACE}"
    k apply -f "${work}/pre.yaml" >&2
    check_secrets

    if [[ "${OVERLAY}" == production && "${SKIP_BACKUP:-0}" != 1 ]] \
            && k get cronjob flowable-ui-db-backup >/dev/null 2>&1 \
            && k get pvc flowable-ui-backups >/dev/null 2>&1; then
        local backup_job
        backup_job="flowable-ui-db-backup-predeploy-$(date -u +%Y%m%d%H%M%S)"
        log "pre-deploy backup: ${backup_job}"
        k create job --from=cronjob/flowable-ui-db-backup "${backup_job}" >&2
        wait_job "${backup_job}" 3600
    fi

    log "migrating the schema"
    k delete job flowable-ui-migrate --ignore-not-found --wait=true >&2
    k apply -f "${work}/migrate.yaml" >&2
    wait_job flowable-ui-migrate "${TIMEOUT_MIGRATION}"

    log "applying the workload (${image})"
    k apply -f "${work}/workload.yaml" >&2
    if [[ "${OVERLAY}" == production ]]; then
        wait_rollout paused
        log "preview is up; promote with: ${SCRIPT_NAME} promote production"
    else
        wait_rollout complete
    fi
}

cmd_promote() {
    local full="${1:-}"
    has_rollout || die "no Argo Rollout ${APP} in ${NAMESPACE}"
    log "promoting ${APP} in ${NAMESPACE}${full:+ (--full)}"
    k argo rollouts promote "${APP}" ${full:+--full} >&2
    wait_rollout complete
}

cmd_rollback() {
    local revision="$1" full="${2:-}"
    [[ "${revision}" =~ ^[0-9]+$ ]] || die "REVISION must be a number (0 = previous), got '${revision}'" 2
    if has_rollout; then
        log "rolling ${APP} in ${NAMESPACE} back to revision ${revision} (0 = previous)"
        k argo rollouts undo "${APP}" --to-revision="${revision}" >&2
        sleep 5
        # Blue-green (manual promotion) and canary both pause the way back as well.
        if [[ "$(k get rollouts.argoproj.io "${APP}" -o jsonpath='{.status.phase}')" != Healthy ]]; then
            wait_rollout paused
            if [[ "$(k get rollouts.argoproj.io "${APP}" -o jsonpath='{.status.phase}')" == Paused ]]; then
                k argo rollouts promote "${APP}" ${full:+--full} >&2
            fi
        fi
        wait_rollout complete
    else
        log "rolling deployment/${APP} in ${NAMESPACE} back to revision ${revision}"
        k rollout undo "deployment/${APP}" --to-revision="${revision}" >&2
        k rollout status "deployment/${APP}" --timeout="${TIMEOUT_ROLLOUT}s" >&2
    fi
}

cmd_status() {
    if has_rollout && k argo rollouts version >/dev/null 2>&1; then
        k argo rollouts get rollout "${APP}" --no-color
    elif has_rollout; then
        k get rollouts.argoproj.io "${APP}" -o wide
    else
        k rollout status "deployment/${APP}" --watch=false
    fi
}

[[ $# -ge 1 ]] || { usage >&2; exit 2; }
command="$1"; shift
case "${command}" in
    -h|--help|help) usage; exit 0 ;;
esac
[[ $# -ge 1 ]] || { usage >&2; exit 2; }
select_env "$1"; shift
command -v "${KUBECTL}" >/dev/null 2>&1 || die "${KUBECTL} not found"

case "${command}" in
    render) [[ $# -eq 1 ]] || { usage >&2; exit 2; }; render "$1" ;;
    deploy) [[ $# -eq 1 ]] || { usage >&2; exit 2; }; cmd_deploy "$1" ;;
    promote)
        case "${1:-}" in "") cmd_promote ;; --full) cmd_promote --full ;; *) usage >&2; exit 2 ;; esac ;;
    rollback)
        [[ $# -ge 1 && $# -le 2 ]] || { usage >&2; exit 2; }
        case "${2:-}" in "") cmd_rollback "$1" ;; --full) cmd_rollback "$1" --full ;; *) usage >&2; exit 2 ;; esac ;;
    status) cmd_status ;;
    *) usage >&2; exit 2 ;;
esac

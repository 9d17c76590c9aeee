#!/usr/bin/env bash
# Restore a flowable-ui backup (made by backup-database.sh) into a NEW database, then verify.
#
# Never restores over a live database by accident: the target database is created by this
# script and an existing one is refused unless --force is given (which drops it first).
# Verification: the archive's checksum (if a .sha256 is beside it), the events table exists
# and its row count lies within the bounds recorded in the backup's .manifest.
# Non-interactive: configured by flags or environment; never prompts for a password.
# Logs go to stderr; the name of the restored database is the only line on stdout.
#
# See deploy/README.md#restoring-a-backup for the whole procedure (switch-over, projection
# rebuild, audit verification).
set -euo pipefail

readonly SCRIPT_NAME="${0##*/}"

usage() {
    cat <<EOF
Usage: ${SCRIPT_NAME} [options] BACKUP_FILE

Restore BACKUP_FILE (PREFIX_*.dump.gz from backup-database.sh, or a plain pg_dump -Fc file)
into a new database on the server, and verify it.

Connection to the server (first match wins):
  -u, --url URL             libpq URI of any database on the server, e.g.
                            postgres://admin@db:5432/postgres (env DATABASE_URL); its database
                            part is replaced by the maintenance and target databases
                            otherwise PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE, ...

Options:
  -t, --target-db NAME      database to create and restore into
                            (env TARGET_DB, default flowable_ui_restore_YYYYmmddTHHMMSSZ)
  -f, --force               drop the target database first if it exists (env FORCE=1)
      --maintenance-db NAME database used for CREATE/DROP DATABASE (env MAINTENANCE_DB, default postgres)
      --owner ROLE          owner of the new database; restored objects are owned by ROLE
                            (implies --no-owner)
      --no-owner            do not restore object ownership (objects belong to the restoring user)
      --no-acl              do not restore GRANTs (roles of the source cluster may not exist here)
  -j, --jobs N              parallel pg_restore jobs (a .gz is first decompressed to TMPDIR)
      --skip-verify         skip the events-table verification (e.g. for a foreign dump)
  -h, --help                show this help

Exit status: 0 restored and verified; 1 failure; 2 bad usage; 3 target database exists
(without --force); 4 verification failed (the restored database is kept for inspection).

Example:
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    ${SCRIPT_NAME} --target-db flowable_ui_restored /backups/flowable_ui_20250101T020000Z.dump.gz
EOF
}

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SCRIPT_NAME}" "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }
usage_error() { log "ERROR: $*"; usage >&2; exit 2; }
need_value() { [[ "$2" -ge 2 ]] || usage_error "option $1 needs a value"; }
is_true() { [[ "${1,,}" =~ ^(1|true|yes|on)$ ]]; }
redact() { sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$1"; }

DB_URL="${DATABASE_URL:-}"
TARGET_DB="${TARGET_DB:-}"
FORCE="${FORCE:-0}"
MAINTENANCE_DB="${MAINTENANCE_DB:-postgres}"
OWNER=""
NO_OWNER=0
NO_ACL=0
JOBS=1
SKIP_VERIFY=0
BACKUP_FILE=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        -u|--url) need_value "$1" $#; DB_URL="$2"; shift 2 ;;
        -t|--target-db) need_value "$1" $#; TARGET_DB="$2"; shift 2 ;;
        -f|--force) FORCE=1; shift ;;
        --maintenance-db) need_value "$1" $#; MAINTENANCE_DB="$2"; shift 2 ;;
        --owner) need_value "$1" $#; OWNER="$2"; NO_OWNER=1; shift 2 ;;
        --no-owner) NO_OWNER=1; shift ;;
        --no-acl) NO_ACL=1; shift ;;
        -j|--jobs) need_value "$1" $#; JOBS="$2"; shift 2 ;;
        --skip-verify) SKIP_VERIFY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) usage_error "unknown option: $1" ;;
        *) [[ -z "${BACKUP_FILE}" ]] || usage_error "only one backup file, got '$1' too"
           BACKUP_FILE="$1"; shift ;;
    esac
done
if [[ $# -gt 0 ]]; then
    [[ -z "${BACKUP_FILE}" && $# -eq 1 ]] || usage_error "only one backup file"
    BACKUP_FILE="$1"
fi

[[ -n "${BACKUP_FILE}" ]] || usage_error "no backup file given"
[[ -f "${BACKUP_FILE}" && -r "${BACKUP_FILE}" ]] || die "backup file not found or unreadable: ${BACKUP_FILE}"
[[ "${JOBS}" =~ ^[1-9][0-9]*$ ]] || usage_error "jobs must be a positive number, got '${JOBS}'"
TARGET_DB="${TARGET_DB:-flowable_ui_restore_$(date -u +%Y%m%dT%H%M%SZ)}"
ident_re='^[A-Za-z_][A-Za-z0-9_]{0,62}$'
[[ "${TARGET_DB}" =~ ${ident_re} ]] || usage_error "target database name must match ${ident_re}"
[[ "${MAINTENANCE_DB}" =~ ${ident_re} ]] || usage_error "maintenance database name must match ${ident_re}"
[[ -z "${OWNER}" || "${OWNER}" =~ ${ident_re} ]] || usage_error "owner must match ${ident_re}"
[[ "${TARGET_DB}" != "${MAINTENANCE_DB}" ]] || usage_error "the target database cannot be the maintenance database"

for cmd in pg_restore psql gzip sha256sum; do
    command -v "${cmd}" >/dev/null 2>&1 || die "required command not found: ${cmd}"
done

# The connection string for database $1: the URL with its path replaced, or just the name
# (host, port, user, password then come from the PG* environment).
conn_for() {
    local db="$1"
    if [[ -n "${DB_URL}" ]]; then
        local re='^(postgres(ql)?://[^/?#]*)(/[^?#]*)?([?#].*)?$'
        [[ "${DB_URL}" =~ ${re} ]] || die "DATABASE_URL is not a postgres:// URI"
        printf '%s/%s%s' "${BASH_REMATCH[1]}" "${db}" "${BASH_REMATCH[4]}"
    else
        printf '%s' "${db}"
    fi
}
MAINT_CONN="$(conn_for "${MAINTENANCE_DB}")"
TARGET_CONN="$(conn_for "${TARGET_DB}")"

psql_on() { # conn, then psql arguments
    local conn="$1"; shift
    psql -w -X -q -A -t -v ON_ERROR_STOP=1 --dbname="${conn}" "$@"
}

# 1. The archive itself.
case "${BACKUP_FILE}" in
    *.gz) compressed=1 ;;
    *) compressed=0 ;;
esac
if [[ -f "${BACKUP_FILE}.sha256" ]]; then
    expected="$(cut -d' ' -f1 <"${BACKUP_FILE}.sha256")"
    actual="$(sha256sum "${BACKUP_FILE}" | cut -d' ' -f1)"
    [[ "${expected}" == "${actual}" ]] || die "checksum mismatch for ${BACKUP_FILE}: expected ${expected}, got ${actual}" 4
    log "checksum ok (${actual})"
else
    log "no ${BACKUP_FILE}.sha256 beside the backup: checksum not verified"
fi
if [[ "${compressed}" -eq 1 ]]; then
    gzip -t "${BACKUP_FILE}" || die "gzip integrity check failed for ${BACKUP_FILE}" 4
fi

manifest_value() { # key -> value from the .manifest, or empty
    [[ -f "${BACKUP_FILE}.manifest" ]] || return 0
    sed -n "s/^$1=//p" "${BACKUP_FILE}.manifest" | head -n 1
}
count_before="$(manifest_value events_count_before)"
count_after="$(manifest_value events_count_after)"

# 2. A new, empty database.
if [[ -n "${DB_URL}" ]]; then
    log "server: $(redact "${MAINT_CONN}")"
fi
exists="$(psql_on "${MAINT_CONN}" -v db="${TARGET_DB}" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'db';
SQL
)" || die "cannot connect to the maintenance database ${MAINTENANCE_DB}"
if [[ "${exists}" != "0" ]]; then
    if is_true "${FORCE}"; then
        log "WARNING: dropping the existing database ${TARGET_DB} (--force)"
        psql_on "${MAINT_CONN}" -v db="${TARGET_DB}" <<'SQL' || die "cannot drop ${TARGET_DB}"
DROP DATABASE :"db" WITH (FORCE);
SQL
    else
        die "database ${TARGET_DB} already exists; choose another --target-db or pass --force to drop it" 3
    fi
fi
log "creating database ${TARGET_DB}"
if [[ -n "${OWNER}" ]]; then
    psql_on "${MAINT_CONN}" -v db="${TARGET_DB}" -v owner="${OWNER}" <<'SQL' || die "cannot create ${TARGET_DB}"
CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;
SQL
else
    psql_on "${MAINT_CONN}" -v db="${TARGET_DB}" <<'SQL' || die "cannot create ${TARGET_DB}"
CREATE DATABASE :"db" TEMPLATE template0;
SQL
fi

# 3. pg_restore. A single job streams from gzip; parallel jobs need a seekable file.
restore_args=(-w --exit-on-error "--dbname=${TARGET_CONN}")
[[ "${NO_OWNER}" -eq 1 ]] && restore_args+=(--no-owner)
[[ -n "${OWNER}" ]] && restore_args+=("--role=${OWNER}")
[[ "${NO_ACL}" -eq 1 ]] && restore_args+=(--no-acl)

tmp_archive=""
cleanup() { [[ -z "${tmp_archive}" ]] || rm -f -- "${tmp_archive}"; }
trap cleanup EXIT

log "restoring ${BACKUP_FILE} into ${TARGET_DB} (jobs: ${JOBS})"
if [[ "${JOBS}" -gt 1 ]]; then
    archive="${BACKUP_FILE}"
    if [[ "${compressed}" -eq 1 ]]; then
        tmp_archive="$(mktemp "${TMPDIR:-/tmp}/flowable-ui-restore.XXXXXX")"
        gzip -dc "${BACKUP_FILE}" >"${tmp_archive}" || die "cannot decompress ${BACKUP_FILE}"
        archive="${tmp_archive}"
    fi
    pg_restore "${restore_args[@]}" --jobs="${JOBS}" "${archive}" \
        || die "pg_restore failed; the partial database ${TARGET_DB} is kept for inspection"
elif [[ "${compressed}" -eq 1 ]]; then
    # gzip -t above checked the stream; pg_restore may stop reading before its end (SIGPIPE).
    { gzip -dc "${BACKUP_FILE}" || true; } | pg_restore "${restore_args[@]}" \
        || die "pg_restore failed; the partial database ${TARGET_DB} is kept for inspection"
else
    pg_restore "${restore_args[@]}" "${BACKUP_FILE}" \
        || die "pg_restore failed; the partial database ${TARGET_DB} is kept for inspection"
fi
psql_on "${TARGET_CONN}" -c "ANALYZE" || die "ANALYZE failed"

# 4. Verify.
if [[ "${SKIP_VERIFY}" -eq 1 ]]; then
    log "verification skipped (--skip-verify)"
else
    present="$(psql_on "${TARGET_CONN}" -c "SELECT to_regclass('public.events') IS NOT NULL")"
    [[ "${present}" == "t" ]] || die "verification failed: no table public.events in ${TARGET_DB}" 4
    restored="$(psql_on "${TARGET_CONN}" -c "SELECT count(*) FROM public.events")"
    log "events restored: ${restored}"
    if [[ "${count_before}" =~ ^[0-9]+$ && "${count_after}" =~ ^[0-9]+$ ]]; then
        # The event store is append-only, so the dump holds at least the rows counted
        # before it started and at most those counted after it finished.
        if (( restored < count_before || restored > count_after )); then
            die "verification failed: ${restored} events restored, the backup saw ${count_before}..${count_after}" 4
        fi
        log "verified: ${restored} events, within the backup's bounds ${count_before}..${count_after}"
    else
        log "no manifest with event counts beside the backup: row count not compared"
    fi
    # The feed reads events in (tx_id, global_position) order and only those with
    # tx_id < xmin of the current snapshot. tx_id values come from the SOURCE cluster: if
    # they are ahead of this cluster's transaction counter (a restore into another cluster),
    # projectors and the relay would not see the restored events and new events would sort
    # before them. Refuse such a database instead of letting a projection rebuild come up empty.
    ahead="$(psql_on "${TARGET_CONN}" -c \
        "SELECT coalesce(max(tx_id) >= pg_snapshot_xmin(pg_current_snapshot()), false) FROM public.events")"
    if [[ "${ahead}" == "t" ]]; then
        max_tx="$(psql_on "${TARGET_CONN}" -c "SELECT max(tx_id) FROM public.events")"
        die "verification failed: restored events carry transaction ids up to ${max_tx}, ahead of this cluster's transaction counter; the event feed would not see them. See deploy/README.md#restoring-a-backup (transaction ids)" 4
    fi
    for table in process_models model_versions audit_logs projection_checkpoints; do
        if [[ "$(psql_on "${TARGET_CONN}" -c "SELECT to_regclass('public.${table}') IS NOT NULL")" == "t" ]]; then
            log "  ${table}: $(psql_on "${TARGET_CONN}" -c "SELECT count(*) FROM public.${table}") rows"
        fi
    done
fi

log "restore ok: ${TARGET_DB}. Next: rebuild and check the read side against it, e.g."
log "  DATABASE_URL=<url of ${TARGET_DB}> flowable-ui projections rebuild && flowable-ui audit verify"
printf '%s\n' "${TARGET_DB}"

#!/usr/bin/env bash
# Logical backup of the flowable-ui PostgreSQL database.
#
# pg_dump in custom format (-Fc, uncompressed) piped through gzip into a timestamped file,
# with a .sha256 checksum and a .manifest (events row count before/after the dump, versions,
# size) next to it; then old backups past the retention period are deleted.
# Non-interactive: configured by flags or environment; never prompts for a password.
# Everything is logged to stderr; the path of the new backup is the only line on stdout.
#
# See deploy/README.md#backups for the schedule (Kubernetes CronJob) and restores.
set -euo pipefail

readonly SCRIPT_NAME="${0##*/}"

usage() {
    cat <<EOF
Usage: ${SCRIPT_NAME} [options]

Back up the flowable-ui PostgreSQL database (pg_dump -Fc | gzip) into a backup directory.

Connection (first match wins):
  -u, --url URL           libpq connection URI, e.g. postgres://user@host:5432/flowable_ui
                          (env DATABASE_URL)
                          otherwise the standard libpq variables PGHOST, PGPORT, PGUSER,
                          PGPASSWORD, PGDATABASE, PGSSLMODE, ... (or ~/.pgpass)

Options:
  -d, --dir DIR           backup directory, created if missing   (env BACKUP_DIR, default ./backups)
  -r, --retention-days N  delete this script's backups older than N days; 0 keeps all
                                                                 (env RETENTION_DAYS, default 30)
  -p, --prefix NAME       file name prefix                       (env BACKUP_PREFIX, default flowable_ui)
  -m, --min-bytes N       fail if the compressed dump is smaller (env MIN_BACKUP_BYTES, default 1024)
  -z, --gzip-level N      gzip level 1-9                         (env GZIP_LEVEL, default 6)
  -h, --help              show this help

Output:
  DIR/PREFIX_YYYYmmddTHHMMSSZ.dump.gz            the dump (restore with restore-database.sh)
  DIR/PREFIX_YYYYmmddTHHMMSSZ.dump.gz.sha256     sha256sum of the dump
  DIR/PREFIX_YYYYmmddTHHMMSSZ.dump.gz.manifest   key=value facts used to verify a restore
  stdout: the path of the dump, and nothing else.

Exit status: 0 on success, 1 on any failure (connection, pg_dump, empty or too small dump,
unreadable archive, I/O), 2 on bad usage.

Example:
  DATABASE_URL=postgres://backup@db:5432/flowable_ui BACKUP_DIR=/backups RETENTION_DAYS=14 ${SCRIPT_NAME}
EOF
}

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SCRIPT_NAME}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage_error() { log "ERROR: $*"; usage >&2; exit 2; }

need_value() { # option, remaining argument count
    [[ "$2" -ge 2 ]] || usage_error "option $1 needs a value"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# Print a connection URI with its password masked (never log secrets).
redact() { sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$1"; }

DB_URL="${DATABASE_URL:-}"
BACKUP_DIR="${BACKUP_DIR:-./backups}"
RETENTION_DAYS="${RETENTION_DAYS:-30}"
BACKUP_PREFIX="${BACKUP_PREFIX:-flowable_ui}"
MIN_BACKUP_BYTES="${MIN_BACKUP_BYTES:-1024}"
GZIP_LEVEL="${GZIP_LEVEL:-6}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        -u|--url) need_value "$1" $#; DB_URL="$2"; shift 2 ;;
        -d|--dir) need_value "$1" $#; BACKUP_DIR="$2"; shift 2 ;;
        -r|--retention-days) need_value "$1" $#; RETENTION_DAYS="$2"; shift 2 ;;
        -p|--prefix) need_value "$1" $#; BACKUP_PREFIX="$2"; shift 2 ;;
        -m|--min-bytes) need_value "$1" $#; MIN_BACKUP_BYTES="$2"; shift 2 ;;
        -z|--gzip-level) need_value "$1" $#; GZIP_LEVEL="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done

is_uint "${RETENTION_DAYS}" || usage_error "retention days must be a whole number, got '${RETENTION_DAYS}'"
is_uint "${MIN_BACKUP_BYTES}" || usage_error "min bytes must be a whole number, got '${MIN_BACKUP_BYTES}'"
[[ "${GZIP_LEVEL}" =~ ^[1-9]$ ]] || usage_error "gzip level must be 1-9, got '${GZIP_LEVEL}'"
[[ "${BACKUP_PREFIX}" =~ ^[A-Za-z0-9._-]+$ ]] || usage_error "prefix may only contain letters, digits, '.', '_' and '-'"

for cmd in pg_dump pg_restore psql gzip sha256sum find; do
    command -v "${cmd}" >/dev/null 2>&1 || die "required command not found: ${cmd}"
done

# Connection arguments shared by psql and pg_dump; -w: never prompt for a password.
conn=(-w)
if [[ -n "${DB_URL}" ]]; then
    conn+=("--dbname=${DB_URL}")
    log "database: $(redact "${DB_URL}")"
else
    log "database: from PG* environment (PGHOST=${PGHOST:-<default>} PGDATABASE=${PGDATABASE:-<default>})"
fi

psql_value() { # SQL -> single value
    psql "${conn[@]}" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

# Row count of the append-only event store, or "absent". Because events are never updated
# or deleted, count-before <= rows-in-dump <= count-after: restore verifies against that.
events_count() {
    local present
    present="$(psql_value "SELECT to_regclass('public.events') IS NOT NULL")"
    if [[ "${present}" == "t" ]]; then
        psql_value "SELECT count(*) FROM public.events"
    else
        echo absent
    fi
}

mkdir -p -- "${BACKUP_DIR}" || die "cannot create backup directory ${BACKUP_DIR}"
[[ -w "${BACKUP_DIR}" ]] || die "backup directory is not writable: ${BACKUP_DIR}"

db_name="$(psql_value "SELECT current_database()")" || die "cannot connect to the database"
server_version="$(psql_value "SHOW server_version")"
client_version="$(pg_dump --version)"
log "connected: database ${db_name}, server ${server_version}, ${client_version}"

timestamp="$(date -u +%Y%m%dT%H%M%SZ)"
name="${BACKUP_PREFIX}_${timestamp}.dump.gz"
suffix=1
while [[ -e "${BACKUP_DIR}/${name}" ]]; do
    name="${BACKUP_PREFIX}_${timestamp}-${suffix}.dump.gz"
    suffix=$((suffix + 1))
done
final="${BACKUP_DIR}/${name}"
partial="${final}.partial"

cleanup() { rm -f -- "${partial}" "${partial}.sha256" "${partial}.manifest"; }
trap cleanup EXIT

count_before="$(events_count)"
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "dumping ${db_name} to ${final} (events before: ${count_before})"

# -Fc: custom format (selective and parallel pg_restore); -Z 0: let gzip compress, so the
# file can be integrity-checked with gzip -t and streamed to pg_restore.
if ! pg_dump "${conn[@]}" --format=custom --compress=0 \
        | gzip -"${GZIP_LEVEL}" >"${partial}"; then
    die "pg_dump failed"
fi

count_after="$(events_count)"
finished_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

size="$(wc -c <"${partial}" | tr -d ' ')"
[[ "${size}" -gt 0 ]] || die "backup file is empty"
[[ "${size}" -ge "${MIN_BACKUP_BYTES}" ]] \
    || die "backup is only ${size} bytes (minimum ${MIN_BACKUP_BYTES}); refusing to keep it"
gzip -t "${partial}" || die "gzip integrity check failed"

# pg_restore --list stops reading after the table of contents, so gzip may die of SIGPIPE:
# its status is ignored here (gzip -t above already checked the whole stream).
toc="$({ gzip -dc "${partial}" || true; } | pg_restore --list)" || die "pg_restore cannot read the archive"
if [[ "${count_before}" != "absent" ]] \
        && ! grep -Eq 'TABLE DATA (public )?events ' <<<"${toc}"; then
    die "the archive has no data for table events"
fi
toc_entries="$(grep -cv '^;' <<<"${toc}" || true)"

checksum="$(sha256sum "${partial}" | cut -d' ' -f1)"
printf '%s  %s\n' "${checksum}" "${name}" >"${partial}.sha256"
cat >"${partial}.manifest" <<EOF
file=${name}
format=pg_dump-custom+gzip
database=${db_name}
server_version=${server_version}
pg_dump_version=${client_version}
started_at=${started_at}
finished_at=${finished_at}
events_count_before=${count_before}
events_count_after=${count_after}
toc_entries=${toc_entries}
size_bytes=${size}
sha256=${checksum}
EOF

mv -f -- "${partial}.sha256" "${final}.sha256"
mv -f -- "${partial}.manifest" "${final}.manifest"
mv -f -- "${partial}" "${final}"
log "backup ok: ${final} (${size} bytes, ${toc_entries} archive entries, sha256 ${checksum})"

if [[ "${RETENTION_DAYS}" -gt 0 ]]; then
    log "deleting ${BACKUP_PREFIX}_* backups older than ${RETENTION_DAYS} days"
    find "${BACKUP_DIR}" -maxdepth 1 -type f \
        \( -name "${BACKUP_PREFIX}_*.dump.gz" -o -name "${BACKUP_PREFIX}_*.dump.gz.sha256" \
           -o -name "${BACKUP_PREFIX}_*.dump.gz.manifest" \) \
        -mtime +"${RETENTION_DAYS}" -print -delete >&2 \
        || die "retention cleanup failed"
    # Leftovers of interrupted runs.
    find "${BACKUP_DIR}" -maxdepth 1 -type f -name "${BACKUP_PREFIX}_*.partial*" -mmin +1440 -delete >&2 || true
fi

printf '%s\n' "${final}"

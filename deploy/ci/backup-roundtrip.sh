#!/usr/bin/env bash
# Round trip of deploy/scripts/backup-database.sh and restore-database.sh against a real
# PostgreSQL server: a scratch database with the project's migrations and some events,
# backed up, restored into a new database, compared, and both databases dropped again.
#
# Connection: PG* environment (default 127.0.0.1:5432, user postgres, as on the CI machine).
# Exit 0 on success, 1 on failure, 77 if no server is reachable (the caller decides).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
unset PGDATABASE DATABASE_URL

log() { printf 'backup-roundtrip: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

for cmd in psql pg_dump pg_restore pg_isready; do
    command -v "${cmd}" >/dev/null 2>&1 || { log "SKIP: ${cmd} not installed"; exit 77; }
done
pg_isready -q -t 3 || { log "SKIP: no PostgreSQL server at ${PGHOST}:${PGPORT}"; exit 77; }

suffix="$$_$(date +%s)"
src="fui_ci_src_${suffix}"
dst="fui_ci_dst_${suffix}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fui-backup-roundtrip.XXXXXX")"

psql_q() { psql -w -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
    for db in "${src}" "${dst}" "${dst}_x"; do
        psql_q -d postgres -c "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf -- "${work}"
}
trap cleanup EXIT

psql_q -d postgres -c "CREATE DATABASE ${src}" || fail "cannot create the scratch database"

# The real schema: every migration, in order (sqlx names them NNNN_name.sql / .up.sql).
shopt -s nullglob
migrations=("${ROOT}"/migrations/*.sql)
[[ ${#migrations[@]} -gt 0 ]] || fail "no migrations found in ${ROOT}/migrations"
for m in "${migrations[@]}"; do
    [[ "${m}" == *.down.sql ]] && continue
    psql_q -d "${src}" -f "${m}" >/dev/null || fail "migration ${m##*/} does not apply"
done

# 40 models x 5 events, committed in several transactions.
for batch in 0 1 2 3; do
    psql_q -d "${src}" >/dev/null <<SQL || fail "cannot insert events"
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'ProcessModel', 'model-' || (${batch} * 10 + g / 5), g % 5 + 1, 'ModelCreated', '1.0',
       jsonb_build_object('name', 'Model ' || g, 'modelJson', repeat('x', 200)),
       jsonb_build_object('user', 'ci', 'tenant', 'acme')
FROM generate_series(0, 49) AS g;
SQL
done

fingerprint() { # database -> digest of the events in feed order
    psql_q -d "$1" -c "SELECT count(*) || ':' || md5(string_agg(
        concat_ws('|', aggregate_type, aggregate_id, sequence, event_type, event_version,
                  payload::text, metadata::text, global_position, tx_id::text, recorded_at),
        ',' ORDER BY tx_id, global_position)) FROM events"
}
expected="$(fingerprint "${src}")"

backup="$(bash "${ROOT}/deploy/scripts/backup-database.sh" --dir "${work}/backups" \
    --retention-days 1 --min-bytes 512 --url "postgres://${PGUSER}@${PGHOST}:${PGPORT}/${src}" \
    2>"${work}/backup.log")" || { cat "${work}/backup.log" >&2; fail "backup failed"; }
[[ -s "${backup}" && -s "${backup}.sha256" && -s "${backup}.manifest" ]] \
    || fail "backup did not produce the dump, checksum and manifest"
grep -qx 'events_count_before=200' "${backup}.manifest" || fail "manifest lacks the event count"

restored="$(bash "${ROOT}/deploy/scripts/restore-database.sh" --target-db "${dst}" "${backup}" \
    2>"${work}/restore.log")" || { cat "${work}/restore.log" >&2; fail "restore failed"; }
[[ "${restored}" == "${dst}" ]] || fail "restore printed '${restored}', expected ${dst}"

actual="$(fingerprint "${dst}")"
[[ "${actual}" == "${expected}" ]] || fail "restored events differ: ${actual} != ${expected}"

# The restored store still behaves like the event store: identity continues, append-only holds.
next="$(psql_q -d "${dst}" -c "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    VALUES ('ProcessModel', 'after-restore', 1, 'ModelCreated', '1.0', '{}', '{}') RETURNING global_position")"
[[ "${next}" == "201" ]] || fail "identity did not continue after the restore (got ${next})"
if psql_q -d "${dst}" -c "DELETE FROM events" >/dev/null 2>&1; then
    fail "append-only trigger missing after the restore"
fi

# Refuses an existing target without --force (exit 3), replaces it with --force.
set +e
bash "${ROOT}/deploy/scripts/restore-database.sh" --target-db "${dst}" "${backup}" >/dev/null 2>&1
rc=$?
set -e
[[ ${rc} -eq 3 ]] || fail "restore over an existing database exited ${rc}, expected 3"
bash "${ROOT}/deploy/scripts/restore-database.sh" --force --jobs 2 --target-db "${dst}" "${backup}" \
    >/dev/null 2>"${work}/restore2.log" || { cat "${work}/restore2.log" >&2; fail "forced parallel restore failed"; }
[[ "$(fingerprint "${dst}")" == "${expected}" ]] || fail "forced restore differs"

# A corrupted archive is refused before anything is created.
cp "${backup}" "${work}/corrupt.dump.gz"
printf 'garbage' | dd of="${work}/corrupt.dump.gz" bs=1 seek=100 conv=notrunc status=none
set +e
bash "${ROOT}/deploy/scripts/restore-database.sh" --target-db "${dst}_x" "${work}/corrupt.dump.gz" >/dev/null 2>&1
rc=$?
set -e
[[ ${rc} -ne 0 ]] || fail "a corrupted archive was restored"

# A dump below the minimum size is an error and leaves no file behind.
set +e
bash "${ROOT}/deploy/scripts/backup-database.sh" --dir "${work}/small" --min-bytes 999999999 \
    --url "postgres://${PGUSER}@${PGHOST}:${PGPORT}/${src}" >/dev/null 2>&1
rc=$?
set -e
[[ ${rc} -eq 1 ]] || fail "too-small backup exited ${rc}, expected 1"
[[ -z "$(ls -A "${work}/small")" ]] || fail "too-small backup left files behind"

log "ok: 200 events backed up, restored into a new database and compared (${expected%%:*} rows)"

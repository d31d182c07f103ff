#!/bin/sh
# Periodic logical backup of the esp-fleet database (the `backup` compose profile).
#
# Every BACKUP_INTERVAL_SECONDS, `pg_dump --format=custom` of the database into BACKUP_DIR as
# esp-fleet-<UTC timestamp>.dump (written to a temporary name, renamed when complete, so a half-written
# dump never looks like a backup), then keeps only the newest BACKUP_KEEP dumps. Connection settings are
# the standard libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE). BACKUP_ONCE=1 takes one
# dump and exits (non-zero when it failed) — for cron, a manual `docker compose run`, or tests.
#
# Restoring a TimescaleDB dump: see docs/deployment.md ("Backups").
set -eu

BACKUP_DIR="${BACKUP_DIR:-/backups}"
BACKUP_INTERVAL_SECONDS="${BACKUP_INTERVAL_SECONDS:-86400}"
BACKUP_KEEP="${BACKUP_KEEP:-7}"
BACKUP_ONCE="${BACKUP_ONCE:-0}"

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

case "$BACKUP_INTERVAL_SECONDS" in '' | *[!0-9]*) log "BACKUP_INTERVAL_SECONDS must be a whole number of seconds" >&2; exit 78 ;; esac
case "$BACKUP_KEEP" in '' | *[!0-9]* | 0) log "BACKUP_KEEP must be a whole number >= 1" >&2; exit 78 ;; esac

mkdir -p "$BACKUP_DIR"

prune() {
  # Timestamps sort lexically; everything after the newest BACKUP_KEEP goes.
  ls -1 "$BACKUP_DIR" | grep -E '^esp-fleet-[0-9]{8}T[0-9]{6}Z\.dump$' | sort -r | tail -n +"$((BACKUP_KEEP + 1))" |
    while read -r old; do
      rm -f "$BACKUP_DIR/$old"
      log "pruned $old"
    done
}

backup_once() {
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  final="$BACKUP_DIR/esp-fleet-$stamp.dump"
  partial="$BACKUP_DIR/.esp-fleet-$stamp.dump.partial"
  if pg_dump --format=custom --no-owner --no-privileges --file="$partial"; then
    mv "$partial" "$final"
    log "wrote $final ($(wc -c <"$final" | tr -d ' ') bytes)"
    prune
    return 0
  fi
  rm -f "$partial"
  log "pg_dump of ${PGDATABASE:-?} on ${PGHOST:-?} failed; keeping the previous dumps" >&2
  return 1
}

if [ "$BACKUP_ONCE" = "1" ]; then
  backup_once
  exit $?
fi

# Stop promptly on `docker compose stop` (sleep runs in the background so the trap fires at once).
trap 'log "stopping"; exit 0' TERM INT
log "every ${BACKUP_INTERVAL_SECONDS}s into $BACKUP_DIR, keeping $BACKUP_KEEP"
while :; do
  backup_once || true
  sleep "$BACKUP_INTERVAL_SECONDS" &
  wait $!
done

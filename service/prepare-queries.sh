#!/usr/bin/env bash
# Regenerates service/.sqlx, the offline data that lets `sqlx::query!` check statements
# against the schema without a database at build time. Run it after changing a checked
# statement or a migration; it needs the sqlite3 shell (Debian: sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
db=$(mktemp -d)/schema.db
trap 'rm -rf "$(dirname "$db")"' EXIT
for migration in migrations/*.sql; do
    sqlite3 "$db" < "$migration"
done
rm -rf service/.sqlx
mkdir service/.sqlx
# Touch the sources so every query! macro expands again.
find service/src -name '*.rs' -exec touch {} +
DATABASE_URL="sqlite:$db" SQLX_OFFLINE_DIR="$PWD/service/.sqlx" cargo build -p tether-service --locked
echo "wrote $(ls service/.sqlx | wc -l) queries to service/.sqlx"

#!/bin/sh
# One-shot (temporalio/admin-tools): create or upgrade Temporal's schemas in PostgreSQL.
# Safe to re-run: setup-schema leaves an existing schema alone and update-schema applies only
# the versions not applied yet. The databases themselves are created by
# docker/postgres/init-databases.sh.
set -eu

: "${POSTGRES_SEEDS:=postgres}" "${DB_PORT:=5432}" "${POSTGRES_USER:=temporal}"
: "${DBNAME:=temporal}" "${VISIBILITY_DBNAME:=temporal_visibility}"
export SQL_PASSWORD="${POSTGRES_PWD:?POSTGRES_PWD must be set}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in "$DBNAME" "$VISIBILITY_DBNAME"; do
  if [ "$db" = "$DBNAME" ]; then dir="$SCHEMA_DIR/temporal/versioned"; else dir="$SCHEMA_DIR/visibility/versioned"; fi
  echo "schema: $db"
  sql_tool --db "$db" setup-schema -v 0.0
  sql_tool --db "$db" update-schema -d "$dir"
done
echo 'schema: done'

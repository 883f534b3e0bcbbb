#!/bin/sh
# Runs once, when the postgres service initialises an empty data volume
# (/docker-entrypoint-initdb.d). One PostgreSQL server, separate roles and databases:
#   temporal  owns temporal (persistence) and temporal_visibility (visibility, search attributes)
#   closeloop owns closeloop (the app's own tables; the worker runs knex migrations into it)
# Passwords come from the environment (see docker-compose.yml); psql quotes them (:'var').
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  -v temporal_password="${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}" \
  -v closeloop_password="${CLOSELOOP_DB_PASSWORD:?CLOSELOOP_DB_PASSWORD must be set}" <<'SQL'
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

CREATE ROLE closeloop LOGIN PASSWORD :'closeloop_password';
CREATE DATABASE closeloop OWNER closeloop;
REVOKE ALL ON DATABASE closeloop FROM PUBLIC;
REVOKE ALL ON DATABASE temporal FROM PUBLIC;
REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC;

-- Temporal's SQL visibility schema needs btree_gin; create it as superuser up front.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
SQL

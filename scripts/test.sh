#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration tests on SQLite and,
# when PostgreSQL is reachable (TEST_DATABASE_URL, default the local server),
# again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-cli.sh
cargo test --all-targets
pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ "${SKIP_POSTGRES:-0}" != 1 ]; then
  echo "== integration tests on PostgreSQL ($pg_url)"
  TEST_DATABASE_URL="$pg_url" cargo test --test api
fi

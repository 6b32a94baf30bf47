#!/usr/bin/env bash
# The whole test suite: unit tests and the integration tests on SQLite, then
# the integration tests again on PostgreSQL (TEST_DATABASE_URL, default the
# local server; skipped with a message when it is not reachable and
# TEST_DATABASE_URL was not given, or with SKIP_POSTGRES=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-cli.sh
# The sandbox tests run the agent in bubblewrap, as the server's default does.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; }
  else
    echo "bubblewrap is required for the tests: apt-get install bubblewrap" >&2
    exit 1
  fi
fi
# The web console's browser tests drive headless Chromium (chromedriver).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }
  else
    echo "chromium and chromedriver are required for the console tests: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
# The console's sign-in tests run a real OpenID provider (the pinned
# `oidc-provider` package of tests/oidc), installed from its lock file.
if [ ! -f tests/oidc/node_modules/oidc-provider/package.json ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund)
fi
# The repository tests reach an ssh remote through a test sshd (as root).
if [ "$(id -u)" = 0 ] && [ ! -x /usr/sbin/sshd ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server; }
fi
# The fake CLI the fault tests start (an example of the dev-only testkit
# crate; `--all-targets` alone would build it only as a test).
cargo build -p claude-code-api-testkit --examples
# First half on SQLite, whatever TEST_DATABASE_URL says.
env -u TEST_DATABASE_URL cargo test --all-targets
# As root, the whole integration suite once more with the server as an
# unprivileged user (nobody): the agent is then that user in a user
# namespace, without per-tenant users or cgroup limits (the book's "Security
# model" says what each mode guarantees). It reuses the root run's Python
# virtualenvs (made from the system's python3). SKIP_UNPRIVILEGED=1 leaves
# the run out.
if [ "$(id -u)" = 0 ] && [ "${SKIP_UNPRIVILEGED:-0}" != 1 ]; then
  api_bin="$(cargo test --test api --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "api":
        print(m["executable"])')"
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  chown 65534:65534 "$scratch"
  as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups \
      env -i PATH="$PATH" HOME="$scratch" TMPDIR="$scratch" "$@"
  }
  if as_nobody test -x "$api_bin" -a -r "$(pwd)/.claude-cli"; then
    echo "== the integration suite on SQLite with the server as an unprivileged user"
    as_nobody "$api_bin"
  else
    echo "== SKIPPED the unprivileged run: user nobody cannot reach $api_bin (clone the repository where other users can read it)"
  fi
fi
if [ "${SKIP_POSTGRES:-0}" = 1 ]; then
  echo "== PostgreSQL run skipped (SKIP_POSTGRES=1)"
  exit 0
fi
pg_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ -z "${TEST_DATABASE_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "== PostgreSQL run skipped: nothing answers on 127.0.0.1:5432 (set TEST_DATABASE_URL)"
  exit 0
fi
echo "== integration tests on PostgreSQL ($pg_url)"
TEST_DATABASE_URL="$pg_url" cargo test --test api

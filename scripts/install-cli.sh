#!/usr/bin/env bash
# Installs the pinned Claude Code CLI into .claude-cli/ (project-local, no
# global npm state). The server and the tests find it there by default.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(cat config/claude-cli-version)"
bin=".claude-cli/node_modules/.bin/claude"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^${version} "; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is required to install the Claude Code CLI (apt-get install nodejs npm)" >&2
  exit 1
fi
npm install --prefix .claude-cli --no-save --no-audit --no-fund --loglevel=error \
  "@anthropic-ai/claude-code@${version}"
"$bin" --version

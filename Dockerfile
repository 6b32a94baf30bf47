# syntax=docker/dockerfile:1
# claude-code-api: build the server, then run it on a slim Debian with Node
# and the pinned Claude Code CLI (config/claude-cli-version), as a non-root user.

# --- build -------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY tests/support/fake_claude.rs tests/support/fake_claude.rs
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked --bin claude-code-api || true
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin claude-code-api \
 && cp target/release/claude-code-api /claude-code-api

# --- runtime -----------------------------------------------------------------
FROM node:22-bookworm-slim AS runtime
# libpq for PostgreSQL; git, ripgrep and a shell toolset for the agent; curl for the healthcheck.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libpq5 git ripgrep curl procps bubblewrap util-linux \
 && rm -rf /var/lib/apt/lists/*
COPY config/claude-cli-version /opt/claude-cli-version
RUN npm install -g --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$(cat /opt/claude-cli-version)" \
 && claude --version

# Non-root: each CLI process runs in a bubblewrap sandbox inside a user
# namespace (docker-compose.yml lets the container make one), so nothing here
# needs root.
RUN useradd --create-home --uid 10001 --shell /bin/bash app \
 && mkdir -p /data /workspaces /app \
 && chown -R app:app /data /workspaces /app
COPY --from=build /claude-code-api /usr/local/bin/claude-code-api
# The shipped templates are built into the binary; mount a folder and set
# TEMPLATES_DIR to use others.
COPY --chown=app:app config /app/config

USER app
WORKDIR /app
ENV API_HOST=0.0.0.0 \
    API_PORT=8000 \
    DATA_DIR=/data \
    APPROVED_DIRECTORY=/workspaces \
    CLAUDE_CLI_PATH=/usr/local/bin/claude \
    AGENT_SANDBOX=bwrap \
    LOG_FORMAT=json
VOLUME ["/data", "/workspaces"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["claude-code-api"]
CMD ["serve"]

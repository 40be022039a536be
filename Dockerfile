# asana-docspace-bridge: a release build on rust:1.95-bookworm, run on debian:bookworm-slim as a
# non-root user. The binary is PID 1 and handles SIGTERM itself (stops accepting, finishes in-flight
# work, exits 0). Build: `docker build -t asana-docspace-bridge .` (podman: add `--format docker`, or
# the HEALTHCHECK is dropped). Smoke test: scripts/container-smoke.sh; lint: scripts/lint-container.sh.

FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependencies only, in a layer that survives source edits: the manifests and the lock file with
#    empty crate roots. Changing Cargo.toml or Cargo.lock rebuilds from here; changing src/ does not.
#    fakes/ and test-support/ (test doubles and helpers, dev-dependencies) are workspace members
#    that the release build never compiles: their manifests and empty lib.rs files are all cargo
#    needs of them. Declared [[bench]], [[example]] and [[test]] targets are dropped from the
#    manifests here (their files are not in the build, and cargo refuses a manifest naming missing
#    files); Cargo.lock is unaffected.
COPY Cargo.toml Cargo.lock ./
COPY fakes/Cargo.toml fakes/Cargo.toml
COPY test-support/Cargo.toml test-support/Cargo.toml
RUN for manifest in Cargo.toml fakes/Cargo.toml test-support/Cargo.toml; do \
        awk '/^[[:space:]]*\[/ { skip = ($0 ~ /^[[:space:]]*\[\[(bench|example|test)\]\]/) } !skip' \
            "$manifest" > "$manifest.tmp" && mv "$manifest.tmp" "$manifest"; \
    done \
    && mkdir -p src fakes/src test-support/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs fakes/src/lib.rs test-support/src/lib.rs \
    && cargo build --release --locked -p asana-docspace-bridge \
    && rm -rf src \
        target/release/asana-docspace-bridge* \
        target/release/deps/asana_docspace_bridge-* \
        target/release/deps/libasana_docspace_bridge-* \
        target/release/.fingerprint/asana-docspace-bridge-*

# 2. The service itself. migrations/ (sqlx::migrate!) and config/default.toml (include_str!) are
#    compiled into the binary, so they are copied before the build. The touch makes sure cargo
#    rebuilds the crate even when the copied files are older than the placeholder build above.
COPY config config
COPY migrations migrations
COPY src src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p asana-docspace-bridge \
    && install -m 0755 target/release/asana-docspace-bridge /usr/local/bin/asana-docspace-bridge \
    && /usr/local/bin/asana-docspace-bridge --version


FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="asana-docspace-bridge" \
      org.opencontainers.image.description="Invites every Asana task assignee to ONLYOFFICE DocSpace, exactly once." \
      org.opencontainers.image.licenses="MIT"

# ca-certificates: the trust store for HTTPS to Asana and DocSpace (rustls reads the system roots).
# DL3008 (pin apt versions) is ignored on purpose: ca-certificates is the distribution's current trust
# store, and an exact version pin stops building as soon as bookworm publishes a CA update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* /var/log/apt/* /var/log/dpkg.log \
    && groupadd --gid 10001 bridge \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin bridge \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0750 /data

COPY --from=build /usr/local/bin/asana-docspace-bridge /usr/local/bin/asana-docspace-bridge
# The built-in defaults (also compiled into the binary), as a reference and a base for --config files.
COPY config/ /app/config/

# The SQLite store lives on the volume; logs are JSON lines on stdout for the container runtime.
ENV BRIDGE__DATABASE__URL=sqlite:///data/bridge.db \
    BRIDGE__LOG__FORMAT=json

WORKDIR /app
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001

# GET /healthz on 127.0.0.1:<server.port>; no shell or curl in the image, the binary checks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["asana-docspace-bridge", "healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["asana-docspace-bridge"]
CMD ["serve"]

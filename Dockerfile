# syntax=docker/dockerfile:1
# Build: docker build -t helpdesk-bridge .
# Run:   docker run --env-file .env -p 3000:3000 helpdesk-bridge

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a change to src/ does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/helpdesk-bridge-*
COPY src ./src
RUN cargo build --release --locked && strip target/release/helpdesk-bridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/helpdesk-bridge --create-home bridge
COPY --from=build /src/target/release/helpdesk-bridge /usr/local/bin/helpdesk-bridge
USER bridge
WORKDIR /var/lib/helpdesk-bridge
ENV LISTEN_ADDR=0.0.0.0:3000 \
    STATE_DIR=/var/lib/helpdesk-bridge/data \
    LOG_FORMAT=json
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/helpdesk-bridge"]

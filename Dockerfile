# Multi-stage build with the same command as the README (cargo build --release).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Embedded at build time: SQL migrations (sqlx::migrate!) and the status page templates (askama).
COPY migrations ./migrations
COPY templates ./templates
COPY benches ./benches
RUN cargo build --release --locked --bin mcpwatch

# Runtime: no OpenSSL and no CA bundle needed (rustls with compiled-in Mozilla roots).
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/mcpwatch --create-home mcpwatch \
 && mkdir -p /var/lib/mcpwatch/data && chown mcpwatch /var/lib/mcpwatch/data
COPY --from=build /src/target/release/mcpwatch /usr/local/bin/mcpwatch
USER mcpwatch
WORKDIR /var/lib/mcpwatch
# Listen on all interfaces inside the container; the SQLite default and the generated secret
# key live in the data volume (mount it, or set DATABASE_URL and MCPWATCH_SECRET_KEY).
ENV MCPWATCH_LISTEN=0.0.0.0:8080 \
    MCPWATCH_DATA_DIR=/var/lib/mcpwatch/data \
    MCPWATCH_LOG_FORMAT=json
VOLUME ["/var/lib/mcpwatch/data"]
EXPOSE 8080
# Liveness of `serve` (agents have no HTTP port: compose and k8s turn this off for them).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/mcpwatch", "healthcheck"]
# Exec form: mcpwatch is PID 1 and receives SIGTERM directly.
ENTRYPOINT ["/usr/local/bin/mcpwatch"]
CMD ["serve"]

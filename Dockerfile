# Multi-stage build with the same command as the README (cargo build --release).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin mcpwatch

# Runtime: no OpenSSL and no CA bundle needed (rustls with compiled-in Mozilla roots).
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/mcpwatch --create-home mcpwatch
COPY --from=build /src/target/release/mcpwatch /usr/local/bin/mcpwatch
USER mcpwatch
WORKDIR /var/lib/mcpwatch
# Exec form: mcpwatch is PID 1 and receives SIGTERM directly.
ENTRYPOINT ["/usr/local/bin/mcpwatch"]
CMD ["--help"]

# Parley in a container: a build stage with the Rust toolchain, then a slim
# runtime with the binary, the shipped config.toml and a user without
# privileges. Build: docker build -t parley .
# Run:   docker run -p 8080:8080 -v parley-data:/var/lib/parley parley
# Inside the container the server listens on 0.0.0.0:8080 (the container's
# own network namespace; publish the port only where it should be reached).

FROM rust:1-bookworm AS build
WORKDIR /src
# Manifests first, so the dependency layer is rebuilt only when they change.
COPY Cargo.toml Cargo.lock ./
COPY crates/load/Cargo.toml crates/load/Cargo.toml
COPY crates/provider/Cargo.toml crates/provider/Cargo.toml
COPY crates/procstat/Cargo.toml crates/procstat/Cargo.toml
RUN mkdir -p src benches crates/load/src crates/provider/src crates/procstat/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for c in load provider procstat; do touch crates/$c/src/lib.rs; done \
    && sed -i '/^\[\[bench\]\]/,/^$/d' Cargo.toml \
    && cargo build --release --locked || true
COPY . .
RUN touch src/main.rs src/lib.rs crates/*/src/lib.rs \
    && cargo build --release --locked --bin parley \
    && strip target/release/parley

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/parley --create-home --uid 10001 parley
COPY --from=build /src/target/release/parley /usr/local/bin/parley
COPY config.toml /etc/parley/config.toml
USER parley
WORKDIR /var/lib/parley
ENV PARLEY__STORAGE__SQLITE_PATH=/var/lib/parley/parley.db \
    RUST_LOG=info
VOLUME ["/var/lib/parley"]
EXPOSE 8080
# /readyz: serving and its store answers (Redis included, in a cluster).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/parley"]
CMD ["serve", "--config", "/etc/parley/config.toml", "--listen", "0.0.0.0:8080"]

# syntax=docker/dockerfile:1
# valwatch as a container image: compiled in the official Rust image, shipped
# on Debian slim (the same glibc as the build stage) as an unprivileged user.
#
#   docker build -t valwatch:local --build-arg VALWATCH_COMMIT=$(git rev-parse HEAD) .
#   docker run --rm -p 9475:9475 valwatch:local demo --listen 0.0.0.0:9475
#   docker run -d -v ./valwatch.toml:/etc/valwatch/valwatch.toml:ro \
#       -v valwatch-data:/var/lib/valwatch -p 9475:9475 valwatch:local
#
# deploy/compose/ runs it with PostgreSQL, Prometheus, Alertmanager and Grafana.

# 1.95: the toolchain CI builds and tests with (Cargo.toml's rust-version is
# the oldest that compiles; the image builds with what was tested).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# .git is not in the build context (.dockerignore): build.rs takes the commit
# for `valwatch --version` from here instead.
ARG VALWATCH_COMMIT=unknown
ENV VALWATCH_COMMIT=${VALWATCH_COMMIT}
COPY . .
# The registry and target caches survive between builds (BuildKit); the
# binary is copied out of the cache mount so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/valwatch /usr/local/bin/valwatch

FROM debian:${DEBIAN_RELEASE}-slim
# No ca-certificates: TLS (reqwest, lettre) uses rustls with the web PKI
# roots built into the binary. A fixed uid/gid lets volumes and Kubernetes'
# runAsNonRoot check know who writes.
RUN groupadd --system --gid 10001 valwatch \
    && useradd --system --uid 10001 --gid valwatch --home-dir /var/lib/valwatch \
       --shell /usr/sbin/nologin valwatch \
    && install -d -o valwatch -g valwatch -m 0750 /var/lib/valwatch \
    && install -d -m 0755 /etc/valwatch
COPY --from=build /usr/local/bin/valwatch /usr/local/bin/valwatch
COPY LICENSE-MIT LICENSE-APACHE valwatch.example.toml /usr/share/doc/valwatch/

# The embedded SQLite store when no [database] url is set.
ENV VALWATCH_DATA_DIR=/var/lib/valwatch
VOLUME ["/var/lib/valwatch"]
WORKDIR /var/lib/valwatch
USER 10001:10001
# Status page, /metrics, /healthz, /readyz (listen = "0.0.0.0:9475" in the
# configuration, or --listen for the demo: the default 127.0.0.1 is not
# reachable from outside the container).
EXPOSE 9475
ENTRYPOINT ["/usr/local/bin/valwatch"]
CMD ["run", "--config", "/etc/valwatch/valwatch.toml"]

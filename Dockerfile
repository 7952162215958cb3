# guard: multi-stage build; the runtime image runs as a non-root user with
# the database and the plugins on volumes.
#   docker build -t guard .
#   docker run -p 8700:8700 -v guard-data:/var/lib/guard -v $PWD/plugins-dir:/plugins:ro \
#     -v $PWD/guard.toml:/etc/guard/guard.toml:ro -e GITHUB_TOKEN -e GUARD_GITHUB_WEBHOOK_SECRET guard
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# rust-toolchain.toml pins the toolchain; the standard plugins need wasm32-wasip2.
RUN rustup show active-toolchain && rustup target add wasm32-wasip2 \
 && cargo build --release --locked -p guard \
 && strip target/release/guard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/guard guard \
 && mkdir -p /var/lib/guard /plugins /etc/guard \
 && chown guard:guard /var/lib/guard
COPY --from=build /src/target/release/guard /usr/local/bin/guard
USER 10001:10001
ENV GUARD_DATA=/var/lib/guard \
    GUARD_CONFIG=/etc/guard/guard.toml \
    GUARD_LOG=info \
    GUARD_LOG_FORMAT=json
VOLUME ["/var/lib/guard", "/plugins"]
EXPOSE 8700
HEALTHCHECK --interval=30s --timeout=5s CMD ["guard", "status", "--server", "http://127.0.0.1:8700"]
ENTRYPOINT ["guard"]
CMD ["run", "--plugins", "/plugins", "--listen", "0.0.0.0:8700"]

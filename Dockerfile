# syntax=docker/dockerfile:1.7
# Multi-stage build of the `videdit` binary (API server, worker, CLI).
#
#   docker build -t videdit .
#   docker run --rm -p 8080:8080 --env-file .env videdit serve
#
# whisper.cpp is compiled with explicit CPU features instead of
# -march=native, so the image runs on any x86-64 CPU with AVX2 and FMA
# (every Fly.io machine, any server CPU since 2015) and not only on the
# builder's CPU.

# The web app: built with node here, embedded in the binary (no node at run time).
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY clients/typescript/src/schema.d.ts clients/typescript/src/schema.d.ts
COPY web/package.json web/package-lock.json web/tsconfig.json web/
RUN cd web && npm ci --no-audit --no-fund
COPY web/src web/src
RUN cd web && npm run build

FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
ENV GGML_NATIVE=OFF GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON \
    CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
# Registry and target directory are cache mounts: a rebuild after a source
# change recompiles our crates only, not the dependencies (or whisper.cpp).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p videdit-server --bin videdit \
 && cp target/release/videdit /usr/local/bin/videdit

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-inter fonts-dejavu-core libgomp1 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/videdit --uid 10001 videdit
COPY --from=builder /usr/local/bin/videdit /usr/local/bin/videdit
USER videdit
WORKDIR /var/lib/videdit
ENV VIDEDIT_ENV=production BIND_ADDR=0.0.0.0:8080 VIDEDIT_MODEL_DIR=/var/lib/videdit/models
EXPOSE 8080 8081
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/videdit"]
CMD ["serve"]

# secretwire as a minimal non-root image: a static musl binary on distroless
# static:nonroot (no shell, no libc, no curl: the health check is
# `secretwire healthcheck`). Build: `make image` (needs a container engine).
FROM docker.io/library/rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev cmake make perl gcc g++
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The test target is declared in Cargo.toml; an empty stub keeps the manifest valid.
RUN mkdir -p tests/it && touch tests/it/main.rs \
    && cargo build --release --locked --bin secretwire \
    && strip target/release/secretwire

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/secretwire /usr/local/bin/secretwire
USER 65532:65532
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/local/bin/secretwire", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/secretwire"]
CMD ["run", "--manifests", "/manifests", "--listen", "0.0.0.0:9464", "--log-format", "json"]

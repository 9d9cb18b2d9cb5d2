# edelweiss: the service's own image. A static x86_64-unknown-linux-musl binary in an
# image that holds nothing else but CA certificates (for an s3:// store and upstreams).
#
#   docker build -t edelweiss .
#   docker run -p 8080:8080 -v edelweiss-data:/data edelweiss

FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin edelweiss --target x86_64-unknown-linux-musl \
    && install -D target/x86_64-unknown-linux-musl/release/edelweiss /out/edelweiss \
    && mkdir -p /out/data

FROM scratch AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/edelweiss /edelweiss
COPY --from=build --chown=65534:65534 /out/data /data
COPY config/edelweiss.toml /etc/edelweiss/edelweiss.toml
ENV EDELWEISS_LISTEN=0.0.0.0:8080 \
    EDELWEISS_DATA_DIR=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65534:65534
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/edelweiss", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/edelweiss"]
CMD ["serve", "--config", "/etc/edelweiss/edelweiss.toml"]

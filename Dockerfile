# The Refer service binaries and the `refer` CLI, built in one image.
# docker build -t refer:local .   (compose.yaml builds it for each service)
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p refer-capacity -p refer-donations -p refer-intake -p refer-matcher -p refer-console -p refer-cli \
 && mkdir /out \
 && cp target/release/refer-capacity target/release/refer-donations target/release/refer-intake \
       target/release/refer-matcher target/release/refer-console target/release/refer /out/

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data refer && mkdir /data && chown refer /data
COPY --from=build /out/ /usr/local/bin/
USER refer
WORKDIR /data
# Each service: gRPC on REFER_LISTEN, Prometheus text on REFER_METRICS_LISTEN;
# the console: HTTP on REFER_LISTEN (8080).
EXPOSE 8080 50051 50052 50053 50054 51051 51052 51053 51054
CMD ["refer", "--help"]

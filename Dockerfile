# Builds ratewatch and runs it as an unprivileged user. The state store lives in the
# /var/lib/ratewatch volume, so a restarted container keeps the budget it has spent.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/ratewatch /usr/local/bin/ratewatch

FROM debian:bookworm-slim
# ca-certificates is left unpinned on purpose: it must follow Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/ratewatch ratewatch \
    && mkdir -p /var/lib/ratewatch /etc/ratewatch \
    && chown ratewatch /var/lib/ratewatch
COPY --from=build /usr/local/bin/ratewatch /usr/local/bin/ratewatch
COPY examples/ratewatch.yml /etc/ratewatch/ratewatch.yml
USER 10001
VOLUME ["/var/lib/ratewatch"]
EXPOSE 9731
ENTRYPOINT ["/usr/local/bin/ratewatch"]
CMD ["--config.file=/etc/ratewatch/ratewatch.yml", "--storage.path=/var/lib/ratewatch", "--web.listen-address=:9731"]

# A device host: one static binary, no shell, a non-root user. Mount its config at
# /etc/tether/host.toml (data_dir = "/data", ctl socket under /data).
FROM scratch
COPY tether-host /tether-host
COPY --chown=10001:10001 data /data
USER 10001:10001
ENV TETHER_HOST_CONFIG=/etc/tether/host.toml
VOLUME /data
HEALTHCHECK --interval=5s --timeout=6s --start-period=5s --retries=3 \
    CMD ["/tether-host", "ctl", "status"]
ENTRYPOINT ["/tether-host"]
CMD ["run"]

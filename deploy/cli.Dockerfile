# The provisioner CLI: one static binary, no shell, a non-root user; sessions are kept
# under /home.
FROM scratch
COPY tether /tether
COPY --chown=10001:10001 data /home
USER 10001:10001
ENV XDG_CONFIG_HOME=/home
ENTRYPOINT ["/tether"]

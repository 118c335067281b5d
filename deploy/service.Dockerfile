# The cloud service: one static binary, no shell, a non-root user, data in /data. It
# serves TLS from the local CA it creates in /data/tls (the health check trusts it); with
# the operator's certificate, set TETHER_HEALTHCHECK_CA to its CA.
FROM scratch
COPY tether-service /tether-service
COPY --chown=10001:10001 data /data
USER 10001:10001
ENV TETHER_DATA_DIR=/data \
    TETHER_LISTEN=0.0.0.0:8080 \
    TETHER_MQTT_LISTEN=0.0.0.0:1883 \
    TETHER_LOG_FORMAT=json \
    TETHER_HEALTHCHECK_CA=/data/tls/ca.pem
EXPOSE 8080 1883
VOLUME /data
HEALTHCHECK --interval=5s --timeout=6s --start-period=5s --retries=3 \
    CMD ["/tether-service", "healthcheck", "--addr", "127.0.0.1:8080"]
ENTRYPOINT ["/tether-service"]
CMD ["serve"]

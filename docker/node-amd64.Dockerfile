# The plasmd node for linux/amd64: one static binary, nothing else.
FROM scratch
COPY plasmd-linux-amd64 /plasmd
# scratch has no directories: make the data dir and a TMPDIR for
# `plasmd submit --bootstrap`.
WORKDIR /tmp
WORKDIR /data
ENV PLASMD_DATA_DIR=/data
EXPOSE 4747/tcp 4747/udp 4748/tcp
ENTRYPOINT ["/plasmd"]
CMD ["start", "--api", "0.0.0.0:4748"]

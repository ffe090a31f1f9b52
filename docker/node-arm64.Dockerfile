# The plasmd node for linux/arm64, run on any host through Debian's
# statically linked qemu-aarch64-static as the entrypoint: the kernel runs
# the amd64 qemu, qemu runs the arm64 plasmd, so no binfmt_misc
# registration is needed on the host.
FROM scratch
COPY qemu-aarch64-static /qemu-aarch64-static
COPY plasmd-linux-arm64 /plasmd
WORKDIR /tmp
WORKDIR /data
ENV PLASMD_DATA_DIR=/data
EXPOSE 4747/tcp 4747/udp 4748/tcp
ENTRYPOINT ["/qemu-aarch64-static", "/plasmd"]
CMD ["start", "--api", "0.0.0.0:4748"]

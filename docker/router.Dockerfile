# A NAT router: a process that holds a network namespace attached to a
# private and a public network. The scenarios program its NAT from the
# host (nsenter -n iptables), see docker/README.md.
FROM scratch
COPY hold /hold
ENTRYPOINT ["/hold"]

# A client: plasmd as a pure DHT client (it queries and submits, publishes
# no record, accepts no jobs) with its job API open on the container's
# network, built on the node image of one arch (ARG ARCH).
ARG ARCH=amd64
FROM plasm-scenario/node:${ARCH}
COPY client.json /etc/plasm/client.json
CMD ["start", "--config", "/etc/plasm/client.json"]

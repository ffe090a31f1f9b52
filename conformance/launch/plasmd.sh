#!/bin/sh
# Starts plasmd under the conformance suite's launch contract
# (docs/CONFORMANCE.md): the suite sets PHASE_*; this script turns them into
# a plasmd config and starts the node with --ready, which prints the one
# JSON line the suite waits for. Another implementation's launcher does the
# same for its own node.
#
#   plasmsim conformance --launch 'PLASMD=bin/plasmd conformance/launch/plasmd.sh'
set -eu
: "${PHASE_LISTEN:?} ${PHASE_API:?} ${PHASE_DATA_DIR:?}"
PLASMD=${PLASMD:-plasmd}
cfg="$PHASE_DATA_DIR/plasmd.json"
cat >"$cfg" <<JSON
{
  "data_dir": "$PHASE_DATA_DIR",
  "listen": ["$PHASE_LISTEN"],
  "api": "$PHASE_API",
  "jobs": {
    "step_timeout": "${PHASE_STEP_TIMEOUT_MS}ms",
    "max_concurrent": $PHASE_MAX_CONCURRENT,
    "max_per_peer": $PHASE_MAX_PER_PEER,
    "max_module_bytes": $PHASE_MAX_MODULE_BYTES,
    "max_stdin_bytes": $PHASE_MAX_STDIN_BYTES,
    "max_memory_mb": $PHASE_MAX_MEMORY_MB,
    "max_timeout_seconds": $PHASE_MAX_TIMEOUT_SECONDS,
    "stdout_cap": $PHASE_STDOUT_CAP,
    "stderr_cap": $PHASE_STDERR_CAP
  }
}
JSON
exec "$PLASMD" start --config "$cfg" --ready

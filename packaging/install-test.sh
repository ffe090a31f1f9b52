#!/usr/bin/env bash
# The .deb installed for real: a Debian bookworm root file system made by
# debootstrap from Debian's packages, imported into Docker (no registry).
#
#   1. plain container (systemd installed, not running): install, plasmd
#      version, plasmd init and a short plasmd start as the plasm user with
#      the shipped config, reinstall, remove (config kept), purge (all gone,
#      the plasm user kept).
#   2. systemd booted as PID 1: install leaves the node stopped and
#      disabled; enable --now runs it as plasm inside the sandbox and it
#      answers `plasmd status`; a reinstall restarts it; purge stops it and
#      removes it.
#
# Usage: packaging/install-test.sh build/release/plasmd_<version>_amd64.deb
# Needs: docker, debootstrap (the image is built once and kept, tagged by
# what went into it). Env: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

deb=$(realpath "${1:?usage: $0 plasmd_VERSION_amd64.deb}")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
include=systemd,systemd-sysv
for t in docker debootstrap; do
	command -v "$t" >/dev/null || { echo "install-test: $t not found (apt-get install docker.io debootstrap)" >&2; exit 2; }
done

tag=$(printf '%s\n' "$suite" "$include" "$mirror" | sha256sum | cut -c1-12)
image="plasm-debian:$suite-$tag"
if ! docker image inspect "$image" >/dev/null 2>&1; then
	rootfs=$(mktemp -d /tmp/plasm-rootfs.XXXXXX)
	echo "== debootstrap --variant=minbase --include=$include $suite ($mirror)"
	debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
		{ tail -n 30 "$rootfs.log"; exit 1; }
	tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
	rm -rf "$rootfs" "$rootfs.log"
fi
echo "== image $image"

containers=()
cleanup() { for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

echo "== 1. install, run as plasm, remove and purge without systemd"
c=$(docker create -i "$image" bash -s)
containers+=("$c")
docker cp "$deb" "$c:/tmp/plasmd.deb"
docker start -ai "$c" <<'SCRIPT'
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }

step "apt-get install /tmp/plasmd.deb"
apt-get install -y -qq /tmp/plasmd.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "install"; }
plasmd version
plasmd version | grep -q '^plasmd ' || fail "plasmd version"
[ "$(getent passwd plasm | cut -d: -f6,7)" = "/var/lib/plasm:/usr/sbin/nologin" ] || fail "plasm user: $(getent passwd plasm)"
[ "$(stat -c '%U:%G %a' /var/lib/plasm)" = "plasm:plasm 700" ] || fail "data dir: $(stat -c '%U:%G %a' /var/lib/plasm)"
[ "$(stat -c '%U:%G %a' /etc/plasm/plasmd.json)" = "root:root 644" ] || fail "config mode"
grep -qx /etc/plasm/plasmd.json /var/lib/dpkg/info/plasmd.conffiles || fail "config is not a conffile"

step "runuser -u plasm -- plasmd init --data-dir /var/lib/plasm"
runuser -u plasm -- plasmd init --data-dir /var/lib/plasm | tee /tmp/init.txt
grep -q '^peer ID: *12D3KooW' /tmp/init.txt || fail "init printed no peer ID"
[ "$(stat -c '%U %a' /var/lib/plasm/identity.key)" = "plasm 600" ] || fail "identity.key: $(stat -c '%U %a' /var/lib/plasm/identity.key)"

step "plasmd start --config /etc/plasm/plasmd.json as plasm (until it answers)"
# setpriv execs plasmd itself, so the SIGTERM below reaches it directly.
setpriv --reuid plasm --regid plasm --init-groups plasmd start --config /etc/plasm/plasmd.json 2>/tmp/node.log &
pid=$!
for _ in $(seq 100); do plasmd status >/tmp/status.txt 2>&1 && break; sleep 0.2; done
plasmd status || { cat /tmp/node.log; fail "the node with the shipped config did not answer"; }
grep -q "$(sed -n 's/^peer ID: *//p' /tmp/init.txt)" /tmp/status.txt || fail "status shows another identity"
kill -TERM $pid; wait $pid || fail "plasmd start exited $? on SIGTERM"
grep -q '"event":"node_started"' /tmp/node.log || fail "no node_started event in the log"

step "reinstall (maintainer scripts run again)"
before=$(getent passwd plasm; stat -c '%U:%G %a' /var/lib/plasm; sha256sum /var/lib/plasm/identity.key)
dpkg -i /tmp/plasmd.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "reinstall"; }
[ "$before" = "$(getent passwd plasm; stat -c '%U:%G %a' /var/lib/plasm; sha256sum /var/lib/plasm/identity.key)" ] || fail "reinstall changed the user or the data"

step "apt-get remove plasmd (an edited config stays)"
sed -i 's/"level": "info"/"level": "debug"/' /etc/plasm/plasmd.json
apt-get remove -y -qq plasmd >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "remove"; }
[ ! -e /usr/bin/plasmd ] && [ ! -e /usr/lib/systemd/system/plasmd.service ] || fail "remove left the program"
grep -q '"level": "debug"' /etc/plasm/plasmd.json || fail "remove lost the edited config"
[ -f /var/lib/plasm/identity.key ] || fail "remove deleted the node identity"

step "apt-get purge plasmd"
apt-get purge -y -qq plasmd >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "purge"; }
for p in /etc/plasm /var/lib/plasm /usr/share/doc/plasmd /usr/bin/plasmd; do [ ! -e "$p" ] || fail "purge left $p"; done
dpkg -s plasmd >/dev/null 2>&1 && fail "dpkg still knows plasmd"
getent passwd plasm >/dev/null || fail "purge removed the plasm user (policy: kept)"
echo "phase 1: ok"
SCRIPT

echo "== 2. the unit under a booted systemd"
c=$(docker run -d --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
	--tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro "$image" /lib/systemd/systemd)
containers+=("$c")
for _ in $(seq 100); do
	state=$(docker exec "$c" systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.2
done
echo "systemd: $state"
# After boot: systemd mounts a fresh /tmp.
docker cp "$deb" "$c:/root/plasmd.deb"
docker exec -i "$c" bash -s <<'SCRIPT'
set -euo pipefail
fail() { echo "FAIL: $*" >&2; journalctl -u plasmd --no-pager | tail -n 30 >&2; exit 1; }
step() { echo "-- $*"; }

step "apt-get install /root/plasmd.deb: the node stays stopped and disabled"
apt-get install -y -qq /root/plasmd.deb >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "install"; }
[ "$(systemctl is-enabled plasmd)" = disabled ] || fail "installed enabled"
[ "$(systemctl is-active plasmd || true)" = inactive ] || fail "installed running"

step "systemctl enable --now plasmd"
systemctl enable --now plasmd 2>&1
for _ in $(seq 100); do plasmd status >/dev/null 2>&1 && break; sleep 0.2; done
plasmd status || fail "the service does not answer"
pid=$(systemctl show -p MainPID --value plasmd)
[ "$(stat -c %U /proc/$pid)" = plasm ] || fail "runs as $(stat -c %U /proc/$pid)"
grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$pid/status || fail "NoNewPrivs not set"
grep -q '^Seccomp:[[:space:]]*2' /proc/$pid/status || fail "no seccomp filter"
grep -q '^CapEff:[[:space:]]*0000000000000000' /proc/$pid/status || fail "has capabilities"
# The service's own view of the file system: all read-only but its state
# directory and a private /tmp; home directories replaced.
mounted() { awk -v m="$1" -v o="$2" '$5 == m && $6 ~ "^" o "," {f=1} END {exit !f}' /proc/$pid/mountinfo; }
mounted / ro || fail "/ is writable for the service"
mounted /var/lib/plasm rw || fail "/var/lib/plasm is not writable for the service"
mounted /tmp rw || fail "no private /tmp"
mounted /home ro && mounted /root ro || fail "home directories are not hidden"
# The unit's MemoryMax (kept in step with the default config by a Go test
# in packaging/) is what systemd applies.
unit_mb=$(sed -n 's/^MemoryMax=\([0-9]*\)M$/\1/p' "$(systemctl show -p FragmentPath --value plasmd)")
[ -n "$unit_mb" ] || fail "no MemoryMax=NM line in the installed unit"
[ "$(systemctl show -p MemoryMax --value plasmd)" = $((unit_mb * 1024 * 1024)) ] || fail "MemoryMax $(systemctl show -p MemoryMax --value plasmd), unit says ${unit_mb}M"
[ "$(systemctl show -p LimitNOFILE --value plasmd)" = 2048 ] || fail "LimitNOFILE"
grep -q '^Max open files *2048' /proc/$pid/limits || fail "the process has another open files limit"
journalctl -u plasmd -o cat --no-pager | grep -q '"event":"node_started"' || fail "no node_started in the journal"
echo "running as plasm, pid $pid, sandboxed, logging to the journal"

step "reinstall restarts the running node"
dpkg -i /root/plasmd.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "reinstall"; }
for _ in $(seq 100); do plasmd status >/dev/null 2>&1 && break; sleep 0.2; done
new=$(systemctl show -p MainPID --value plasmd)
[ "$new" != 0 ] && [ "$new" != "$pid" ] || fail "not restarted (pid $pid, now $new)"
[ "$(systemctl is-enabled plasmd)" = enabled ] || fail "reinstall disabled the node"

step "apt-get purge plasmd"
apt-get purge -y -qq plasmd >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "purge"; }
systemctl is-active plasmd >/dev/null 2>&1 && fail "still running after purge"
for p in /etc/plasm /var/lib/plasm /usr/lib/systemd/system/plasmd.service /etc/systemd/system/multi-user.target.wants/plasmd.service; do
	[ ! -e "$p" ] && [ ! -L "$p" ] || fail "purge left $p"
done
echo "phase 2: ok"
SCRIPT
echo "install-test: ok"

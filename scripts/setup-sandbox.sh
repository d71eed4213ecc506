#!/usr/bin/env bash
# The sandbox's prerequisites, idempotently: Debian's docker.io, mmdebstrap,
# bubblewrap, python3-seccomp (compiles the bubblewrap seccomp filter) and runsc
# (gVisor, registered with dockerd as the `runsc` runtime); a Docker daemon (started
# here when none answers); the runtime image, the bubblewrap rootfs and its seccomp
# filter, built offline from Debian packages. Safe to re-run; works on a fresh machine
# with CI=true and no standard input.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_ensure docker.io mmdebstrap bubblewrap ca-certificates python3-seccomp runsc

docker_answers() { as_root docker info >/dev/null 2>&1; }

if ! docker_answers; then
  say "starting dockerd (no bridge, no iptables: sandboxes have no network anyway)"
  # setsid: the daemon must outlive the shell (and process group) that started it
  as_root setsid sh -c "nohup dockerd --bridge=none --iptables=false >'$VAR_DIR/dockerd.log' 2>&1 </dev/null &"
  for _ in $(seq 120); do docker_answers && break; sleep 0.5; done
  docker_answers || { tail -20 "$VAR_DIR/dockerd.log" >&2; echo "dockerd did not start" >&2; exit 1; }
fi

# gVisor for SANDBOX_RUNTIME=runsc: merge the runtime into /etc/docker/daemon.json (other
# keys kept) and, when that changed anything, have dockerd re-read it with SIGHUP
# (`runtimes` is reloadable: running containers are untouched). --network=none: no
# network stack at all beyond loopback (sandboxes have no network anyway, and runsc
# refuses Docker's "none" network here); --host-uds=open lets the sandbox connect to
# the Unix sockets the host mounts (the runner's control socket, the egress gateway);
# --oci-seccomp applies the project's seccomp profile inside the gVisor sandbox too.
runsc_registered() { as_root docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }
as_root mkdir -p /etc/docker
changed="$(as_root /usr/bin/python3 - /etc/docker/daemon.json "$(command -v runsc)" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
config = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
wanted = {"path": runsc, "runtimeArgs": ["--network=none", "--host-uds=open", "--oci-seccomp"]}
if config.get("runtimes", {}).get("runsc") != wanted:
    config.setdefault("runtimes", {})["runsc"] = wanted
    with open(path + ".tmp", "w") as handle:
        json.dump(config, handle, indent=2)
    os.replace(path + ".tmp", path)
    print("changed")
PY
)"
if [ -n "$changed" ] || ! runsc_registered; then
  say "registering gVisor (runsc) with dockerd"
  pid="$(as_root cat /var/run/docker.pid 2>/dev/null || true)"
  if [ -n "$pid" ]; then as_root kill -HUP "$pid"; fi
  for _ in $(seq 40); do runsc_registered && break; sleep 0.25; done
  runsc_registered || say "dockerd did not pick up runsc (restart it to offer SANDBOX_RUNTIME=runsc)"
fi

venv_ensure
if [ "$(id -u)" != 0 ]; then
  export BROKERAGE_SANDBOX_CACHE="${BROKERAGE_SANDBOX_CACHE:-$VAR_DIR/sandbox-cache}"
fi
say "building the sandbox runtime image and rootfs (skipped when up to date)"
as_root env ${BROKERAGE_SANDBOX_CACHE:+BROKERAGE_SANDBOX_CACHE="$BROKERAGE_SANDBOX_CACHE"} \
  "$PY" -m brokerage.sandbox.cli build-image --rootfs

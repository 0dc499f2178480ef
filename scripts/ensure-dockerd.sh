#!/usr/bin/env bash
# Start a Docker engine if none answers. CI machines start with none running; the engine
# started here logs to /var/log/wgsp-dockerd.log and its PID is kept in /run/wgsp-dockerd.pid.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd is not installed (make setup installs docker.io)" >&2; exit 1; }
echo "starting dockerd"
nohup dockerd >/var/log/wgsp-dockerd.log 2>&1 &
echo $! >/run/wgsp-dockerd.pid
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd is up"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not come up; last lines of /var/log/wgsp-dockerd.log:" >&2
tail -n 30 /var/log/wgsp-dockerd.log >&2
exit 1

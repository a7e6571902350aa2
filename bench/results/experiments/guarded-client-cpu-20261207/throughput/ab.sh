#!/bin/bash
# the webhook dispatcher before/after SocketStream, same box, back to back
cd /work/cluster
for pair in "before 2d3d06f" "after af9246f"; do
  set -- $pair
  git checkout -q --detach $2
  echo "$1 start $(date +%T) $(cat /proc/loadavg)"
  timeout 900 .venv/bin/python -m wa_ray.bench throughput --sessions 50 --rate 1000 --duration 90 --pacing off --out /tmp/eg/$1 > /tmp/eg/$1.log 2>&1
  echo "$1 rc=$? $(date +%T)"
  sleep 30  # let the first run's workers exit before the second starts
done

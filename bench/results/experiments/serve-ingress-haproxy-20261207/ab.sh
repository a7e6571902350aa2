#!/bin/bash
# Serve's default proxy vs HAProxy direct ingress, same tree, back to back
cd /work/cluster
for mode in proxy haproxy; do
  if [ $mode = haproxy ]; then export RAY_SERVE_ENABLE_DIRECT_INGRESS=1 RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_HAPROXY_NBTHREAD=1; fi
  echo "$mode start $(date +%T) $(cat /proc/loadavg)"
  timeout 1200 .venv/bin/python -m wa_ray.bench throughput --sessions 50 --rate 1000 --duration 90 --pacing off --out /tmp/di/$mode > /tmp/di/$mode.log 2>&1
  echo "$mode rc=$? $(date +%T)"
done

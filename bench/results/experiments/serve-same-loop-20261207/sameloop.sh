#!/usr/bin/env bash
# serve mode: our app on its own thread (Ray's default) vs on the replica's loop, alternating
cd /work/cluster
for r in 1 2 3; do
  for mode in thread loop; do
    out=/tmp/ab/sl-$mode-$r
    echo "$(date +%T) $mode round $r load $(cut -d' ' -f1-3 /proc/loadavg)" >> /tmp/ab/sl.log
    if [ $mode = loop ]; then export RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0; else unset RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD; fi
    WA_INGRESS=serve .venv/bin/python -m wa_ray.bench api --rate 100 --duration 30 --targets wa-ray --out $out > $out.log 2>&1
    grep -E "wa-ray" $out.log | tail -3 >> /tmp/ab/sl.log
    sleep 20
  done
done

#!/usr/bin/env bash
# usage: pair.sh tag commitA commitB rounds  -> alternates A,B
tag=$1; a=$2; b=$3; n=${4:-3}
cd /work/cluster
for r in $(seq 1 $n); do
  for c in $a $b; do
    git checkout -q --detach $c
    out=/tmp/ab/$tag-$c-$r
    echo "$(date +%T) $c round $r load $(cut -d' ' -f1-3 /proc/loadavg)" >> /tmp/ab/$tag.log
    WA_INGRESS=haproxy .venv/bin/python -m wa_ray.bench accept-batch --batches 300 --size 1000 --singles 500 $EXTRA --out $out > $out.log 2>&1
    grep -E "^│ (batch|single)" $out.log >> /tmp/ab/$tag.log
    sleep 20
  done
done

cd /work/cluster
for ing in serve haproxy serve haproxy; do
  echo "== $ing $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  WA_INGRESS=$ing timeout 900 .venv/bin/python -m wa_ray.bench accept-batch --batches 300 --size 1000 --singles 500 --out /work/main/bench/results/experiments/ingress-option-20261207/accept-batch-$ing 2>&1 | grep -E "goal|msg/s|batch" | head -12
  ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 20
done

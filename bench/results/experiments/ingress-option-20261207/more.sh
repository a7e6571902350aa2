cd /work/cluster
export PATH=/tmp/pyspy/bin:$PATH
for c in 2 4; do
  echo "== haproxy batch-concurrency $c $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  WA_INGRESS=haproxy timeout 900 .venv/bin/python -m wa_ray.bench accept-batch --batches 300 --size 1000 --singles 500 --batch-concurrency $c --out /work/main/bench/results/experiments/ingress-option-20261207/accept-batch-haproxy-c$c 2>&1 | grep -E "batch:|single:"
  ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 20
done
echo "== api profile $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
WA_INGRESS=haproxy timeout 900 .venv/bin/python -m wa_ray.bench api --rate 200 --duration 30 --targets wa-ray --profile /tmp/api-prof --out /tmp/api-prof-out 2>&1 | grep -E "wa-ray|goal" | head
ray stop --force >/dev/null 2>&1; pkill -9 -f chromium

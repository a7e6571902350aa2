cd /work/cluster
echo "== api $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
WA_INGRESS=haproxy timeout 600 .venv/bin/python -m wa_ray.bench api --rate 200 --duration 30 --targets bare,wa-ray --out /work/main/bench/results/experiments/ingress-option-20261207/api-haproxy-same-loop 2>&1 | grep -E "^wa-ray: p50|^bare: p50"
ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 20
echo "== throughput $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
WA_INGRESS=haproxy timeout 1200 .venv/bin/python -m wa_ray.bench throughput --sessions 50 --rate 1000 --duration 90 --pacing off --out /work/main/bench/results/experiments/ingress-option-20261207/throughput-haproxy-same-loop 2>&1 | grep -E "accepted|lost"
ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 20
echo "== batch $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
WA_INGRESS=haproxy timeout 900 .venv/bin/python -m wa_ray.bench accept-batch --batches 300 --size 1000 --singles 500 --out /work/main/bench/results/experiments/ingress-option-20261207/accept-batch-haproxy-same-loop 2>&1 | grep -E "batch:|single:"
ray stop --force >/dev/null 2>&1; pkill -9 -f chromium

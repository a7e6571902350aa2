cd /work/cluster
sleep 30
for ing in haproxy serve; do
  echo "== $ing $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  WA_INGRESS=$ing timeout 1200 .venv/bin/python -m wa_ray.bench throughput --sessions 50 --rate 1000 --duration 90 --pacing off --out /work/main/bench/results/experiments/ingress-option-20261207/throughput-$ing-2 2>&1 | tail -30
  ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 60
done

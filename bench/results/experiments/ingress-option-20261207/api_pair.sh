cd /work/cluster
for ing in serve haproxy; do
  echo "== $ing $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  WA_INGRESS=$ing timeout 900 .venv/bin/python -m wa_ray.bench api --rate 200 --duration 30 --targets bare,wa-ray --out /work/main/bench/results/experiments/ingress-option-20261207/api-$ing 2>&1 | tail -25
  ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 20
done

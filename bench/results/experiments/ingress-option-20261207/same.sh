cd /work/cluster
for v in 1 0 1 0; do
  echo "== separate_thread=$v $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=$v WA_INGRESS=haproxy timeout 600 .venv/bin/python -m wa_ray.bench api --rate 200 --duration 30 --targets wa-ray --out /tmp/samethread/sep$v 2>&1 | grep -E "^wa-ray: p50"
  ray stop --force >/dev/null 2>&1; pkill -9 -f chromium; sleep 15
done

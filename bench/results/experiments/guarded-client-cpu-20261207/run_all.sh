#!/bin/sh
# The main before/after pair, back to back on one box: run as
#   cd /work/main && flock /tmp/wa-integration.lock sh bench/results/experiments/guarded-client-cpu-20261207/run_all.sh
set -e
D=bench/results/experiments/guarded-client-cpu-20261207
B="timeout 240 .venv/bin/python $D/bench_guarded_post.py --posts 20000 --runs 3"
.venv/bin/python - <<'PY'
import timeit, httpx
from wa_ray.egress import parse_url
url = httpx.URL("https://hooks.example.com:8443/tenant/hook?token=abc")
n = 20000
print("parse_url(str(url)) us:", round(timeit.timeit(lambda: parse_url(str(url)), number=n) / n * 1e6, 2))
PY
$B --impl before --concurrency 32 --json $D/before-c32.json
$B --impl after --concurrency 32 --json $D/after-c32.json

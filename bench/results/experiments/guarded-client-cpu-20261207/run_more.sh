#!/bin/sh
# The profiles and the pool-size variants (fewer posts: the CPU per POST is steady within a run), run as
#   cd /work/main && flock /tmp/wa-integration.lock sh bench/results/experiments/guarded-client-cpu-20261207/run_more.sh
set -e
D=bench/results/experiments/guarded-client-cpu-20261207
timeout 120 .venv/bin/python $D/bench_guarded_post.py --posts 3200 --runs 1 --impl before --profile $D/profile-before.txt
timeout 120 .venv/bin/python $D/bench_guarded_post.py --posts 3200 --runs 1 --impl after --profile $D/profile-after.txt
B="timeout 200 .venv/bin/python $D/bench_guarded_post.py --posts 6400 --runs 3"
$B --impl before --concurrency 128 --json $D/before-c128.json
$B --impl after --concurrency 128 --json $D/after-c128.json
$B --impl after --concurrency 32 --keepalive 32 --json $D/after-c32-k32.json
$B --impl after --concurrency 128 --keepalive 64 --json $D/after-c128-k64.json

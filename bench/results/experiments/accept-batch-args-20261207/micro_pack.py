"""Alternating micro-benchmark: the Python cost of one batch's accept calls (1,000 messages, 10 scripts of 100),
before (16 arguments per message) and after (11): building the arguments and redis-py's packing (hiredis)."""
import statistics, time
from redis.asyncio.connection import Connection


conn = Connection()
def pack(keys, args, sha="a" * 40):
    return conn.pack_commands([("EVALSHA", sha, len(keys), *keys, *args)])

def before(n):
    ks, As = [], []
    for i in range(n):
        ks += [f"wa:{{ws}}:idem:k-{i}", f"wa:{{ws}}:m:msg_{i:016x}", f"wa:{{ws}}:h:msg_{i:016x}", "wa:{ws}:q:s00:normal",
               "wa:{ws}:events", "wa:{ws}:campaign-counts"]
        As += [f"msg_{i:016x}", '{"x":"' + "y" * 200 + '"}', '{"status":"queued"}', "e" * 300, 86400, 10000, "fp" * 16,
               "1", 2592000, ""]
    return ks, As

def after(n):
    ks, As = ["wa:{ws}:events", "wa:{ws}:campaign-counts"], [86400, 10000, 2592000]
    for i in range(n):
        ks += [f"wa:{{ws}}:idem:k-{i}", f"wa:{{ws}}:m:msg_{i:016x}", f"wa:{{ws}}:h:msg_{i:016x}", "wa:{ws}:q:s00:normal"]
        As += [f"msg_{i:016x}", '{"x":"' + "y" * 200 + '"}', '{"status":"queued"}', "e" * 300, "fp" * 16, "1", ""]
    return ks, As

res = {"before": [], "after": []}
for rep in range(40):
    for name, f in (("before", before), ("after", after)):
        t = time.perf_counter()
        for _ in range(10):
            pack(*f(100))
        res[name].append((time.perf_counter() - t) * 1000)
for name, v in res.items():
    print(f"{name}: median {statistics.median(v):.2f} ms per 1,000 messages (min {min(v):.2f})")

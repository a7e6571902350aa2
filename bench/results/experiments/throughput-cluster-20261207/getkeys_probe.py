import asyncio, tempfile
from pathlib import Path
from wa_ray.bench.redis_cluster import running_redis_cluster
from wa_ray.storage.redis_client import connect
import redis

CMDS = {
 "xreadgroup": lambda r, s: r.xreadgroup("g", "c", {s: ">"}, count=10),
 "xread": lambda r, s: r.xread({s: "0-0"}, count=1),
 "xadd": lambda r, s: r.xadd(s, {"a": "1"}),
 "xack": lambda r, s: r.xack(s, "g", "0-1"),
 "xpending_range": lambda r, s: r.xpending_range(s, "g", "-", "+", 10),
 "xclaim": lambda r, s: r.xclaim(s, "g", "c", 0, ["0-1"]),
 "xautoclaim": lambda r, s: r.xautoclaim(s, "g", "c", 0),
 "zcount": lambda r, s: r.zcount(s + "z", 0, 10),
 "hgetall": lambda r, s: r.hgetall(s + "h"),
 "xinfo_groups": lambda r, s: r.xinfo_groups(s),
 "xlen": lambda r, s: r.xlen(s),
 "xrange": lambda r, s: r.xrange(s, "-", "+", count=1),
 "xtrim": lambda r, s: r.xtrim(s, minid="0-1"),
 "sort": None,
}
def getkeys(url):
    total = 0
    for part in url.split("@",1)[1].split(","):
        h,p = part.split(":"); pw = url.split("://:",1)[1].split("@")[0]
        c = redis.Redis(host=h, port=int(p), password=pw)
        st = c.info("commandstats"); total += int(st.get("cmdstat_command|getkeys", {}).get("calls", 0)); c.close()
    return total
async def main(url):
    r = connect(url)
    s = "wa:{t}:q"
    try: await r.xgroup_create(s, "g", id="0", mkstream=True)
    except Exception: pass
    for name, fn in CMDS.items():
        if fn is None: continue
        before = getkeys(url)
        for _ in range(5):
            try: await fn(r, s)
            except Exception as e: pass
        print(f"{name:16s} getkeys per call: {(getkeys(url)-before)/5:.1f}")
    await r.aclose()
with running_redis_cluster(Path(tempfile.mkdtemp()), masters=3) as url:
    asyncio.run(main(url))

import json,glob,sys
for i in sys.argv[1:]:
    f=sorted(glob.glob(f"{i}/throughput-2*.json"))[-1]
    d=json.load(open(f))
    s=d["steps"][0]; c=s["cpu"]; n=s["counts"]["accepted"]
    wall=c["wall_s"]; by=c["by_component_cores"]
    ms={k: v*wall*1000/n for k,v in by.items()}
    http=sum(ms.get(k,0) for k in ("ray::ProxyActor","ray::ServeReplica(Ingress)","haproxy","ray::HAProxyManager"))
    bench=sum(ms.get(k,0) for k in ("bench-process","bench-webhook-receiver"))
    lat=s["latency_ms"]
    def p(key):
        for k,v in lat.items():
            if key in k: return v.get("p99")
    print(f"{i}: load {d['machine']['loadavg_1m_at_start']} machine {c['machine_busy_cores']} accepted {n} counts {s['counts']} ; service ms/msg {sum(ms.values())-bench:.1f} http {http:.1f} (proxy {ms.get('ray::ProxyActor',0):.1f} ingress {ms.get('ray::ServeReplica(Ingress)',0):.1f} haproxy {ms.get('haproxy',0)+ms.get('ray::HAProxyManager',0):.1f}); lat keys {list(lat)[:8]}")
    print("   p99:", {k: v.get("p99") for k,v in lat.items()})

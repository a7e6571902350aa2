import os, sys, time, psutil, ray
N=20
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
@ray.remote(num_cpus=0)
class S:
    def pid(self): return os.getpid()
actors=[S.remote() for _ in range(N)]
pids=ray.get([a.pid.remote() for a in actors])
procs=[psutil.Process(p) for p in pids]
def cpu(): return sum(p.cpu_times().user+p.cpu_times().system for p in procs)
time.sleep(5)
c0=cpu(); t0=time.time(); time.sleep(20); print("sync idle: cores per 50 =", round((cpu()-c0)/(time.time()-t0)/N*50,3))
# per-thread breakdown of one worker
p=procs[0]; t1={t.id:(t.user_time+t.system_time) for t in p.threads()}; time.sleep(10)
t2={t.id:(t.user_time+t.system_time) for t in p.threads()}
import collections
names={}
for tid in t2:
    try: names[tid]=open(f"/proc/{p.pid}/task/{tid}/comm").read().strip()
    except Exception: names[tid]="?"
top=sorted(((t2[k]-t1.get(k,0), names[k]) for k in t2), reverse=True)[:6]
print("per-thread ms/s:", [(n, round(v*100,2)) for v,n in top])

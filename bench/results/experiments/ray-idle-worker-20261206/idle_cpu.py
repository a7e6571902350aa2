import asyncio, os, sys, time, psutil, ray
N=20
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
@ray.remote(num_cpus=0, max_concurrency=100)
class A:
    async def status(self): return {"state": "connected"}
    def pid(self): return os.getpid()
actors=[A.remote() for _ in range(N)]
pids=ray.get([a.pid.remote() for a in actors])
procs=[psutil.Process(p) for p in pids]
def cpu(): return sum(p.cpu_times().user+p.cpu_times().system for p in procs)
time.sleep(5)
c0=cpu(); t0=time.time(); time.sleep(20); print("idle, no calls: cores per 50 =", round((cpu()-c0)/(time.time()-t0)/N*50,3))
async def poll():
    end=time.time()+20
    while time.time()<end:
        await asyncio.gather(*[a.status.remote() for a in actors]); await asyncio.sleep(1)
c0=cpu(); t0=time.time(); asyncio.run(poll()); print("1 status call/s: cores per 50 =", round((cpu()-c0)/(time.time()-t0)/N*50,3))

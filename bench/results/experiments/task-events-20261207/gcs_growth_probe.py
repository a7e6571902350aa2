import os, time, sys, psutil, ray
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
@ray.remote
class A:
    def f(self, x): return x
    def g(self, x): return x
a = A.options(**({"enable_task_events": False} if os.environ.get("NOEV")=="1" else {})).remote()
ray.get(a.f.remote(1))
gcs = [p for p in psutil.process_iter(['name','cmdline']) if 'gcs_server' in ' '.join(p.info['cmdline'] or [])][0]
def pss(): return gcs.memory_full_info().pss/1e6
print("start", round(pss(),1), flush=True)
t=time.time()
for r in range(6):
    for i in range(0, 20000, 500):
        ray.get([a.f.remote(j) for j in range(500)])
    time.sleep(1.5)
    print((r+1)*20000, round(pss(),1), round(time.time()-t,1), flush=True)

"""asyncio.gather of 1,000 trivial coroutines (10 chunks of 100), as the batch route prepared its items, against
awaiting them in turn."""
import asyncio, statistics, time
async def work(i):
    x = 0
    for j in range(20): x += j
    return i, x
async def main():
    res = {"gather": [], "sequential": []}
    for rep in range(50):
        t = time.perf_counter()
        for c in range(10):
            await asyncio.gather(*(work(i) for i in range(100)))
        res["gather"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        for c in range(10):
            [await work(i) for i in range(100)]
        res["sequential"].append((time.perf_counter() - t) * 1000)
    for k, v in res.items(): print(k, f"median {statistics.median(v):.2f} ms per 1,000 (min {min(v):.2f})")
asyncio.run(main())

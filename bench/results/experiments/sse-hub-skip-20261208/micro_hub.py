"""The SSE hub's work for one read of 500 entries (READ_COUNT) of a campaign's `message.queued`, as stored, for a
feed whose subscriber wants acks and sessions (the bench's browser) and for one that wants every type."""
import statistics, time
from wa_ray.events import Event
from wa_ray.serve_app.sse import EventFilter, Subscriber, _wanted_events
from wa_ray.storage.events import encode

batch = [(f"1765000000000-{i}", encode(Event("message.queued", "acme", "s00", {
    "message_id": f"msg_{i:016x}", "to": "15551230001", "priority": "normal", "provider": "webjs", "type": "text"})))
    for i in range(500)]
acks = {Subscriber(EventFilter(frozenset({"message.sent", "message.ack", "message.failed", "session.status"})))}
every = {Subscriber(EventFilter())}
res = {"acks and sessions": [], "every type": []}
for _ in range(200):
    for name, subs in (("acks and sessions", acks), ("every type", every)):
        t = time.perf_counter()
        _wanted_events(batch, subs)
        res[name].append((time.perf_counter() - t) * 1000)
for name, v in res.items():
    print(f"{name}: median {statistics.median(v):.3f} ms per 500 entries (min {min(v):.3f})")

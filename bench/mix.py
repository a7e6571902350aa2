"""The message mix of `bench throughput --mix`: which kind each message is, the media it carries, and what
the mix adds to a step's report (per-kind latency, media integrity on the phone, CPU per MB of media) and
the 16 MB video probe (peak memory of the service while one video goes out).

Each media kind in the mix is uploaded once (`POST /v1/workspaces/{ws}/media`) before the step and every
message of that kind is sent by its `media_id`, so the step measures sending media, not uploading it.
Media messages carry the run's `bench <tag> #<seq>` text as their caption: the phone's inbox is matched
by caption (media) or body (text), so `lost`/`duplicated` mean the same as for text. A delivered media
whose sha256 on the phone differs from the uploaded one counts as `media_corrupted`.

The files are synthetic but well-formed containers of the exact size asked for (a stored-deflate PNG, a
PDF with one binary stream, an MP4 with ftyp + mdat), random inside so nothing on the way compresses them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from wa_ray.bench.idle import NOT_SERVICE
from wa_ray.bench.machine import CpuAccount
from wa_ray.bench.memory import Mem, rollup, to_mb
from wa_ray.bench.report import Stats, to_jsonable
from wa_ray.message_kinds import CAPTION_KINDS, MB, MEDIA_LIMITS, Kind

DEFAULT_MIX = "text:70,image:20,document:10"
DEFAULT_IMAGE_BYTES = MB
DEFAULT_DOCUMENT_BYTES = MB
VIDEO_BYTES = MEDIA_LIMITS[Kind.VIDEO].max_bytes  # 16 MB: the largest video either provider takes
MIX_KINDS = frozenset({Kind.TEXT, Kind.IMAGE, Kind.DOCUMENT, Kind.VIDEO})  # captioned: matched on the phone
SAMPLE_EVERY_S = 0.1
UPLOAD_TIMEOUT_S = 300.0


# ------------------------------------------------------------------ the mix
def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """`text:70,image:20,document:10` -> ((kind, share), ...) with shares summing to 1."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        kind, sep, weight = part.strip().partition(":")
        if not sep or kind not in {k.value for k in MIX_KINDS}:
            raise ValueError(f"mix entries are kind:weight with kind one of {sorted(k.value for k in MIX_KINDS)}")
        value = float(weight)
        if not value > 0 or kind in shares:
            raise ValueError("each kind once, with a weight > 0")
        shares[kind] = value
    total = sum(shares.values())
    return tuple((k, v / total) for k, v in shares.items())


@dataclass(frozen=True)
class MixSpec:
    shares: tuple[tuple[str, float], ...]
    image_bytes: int = DEFAULT_IMAGE_BYTES
    document_bytes: int = DEFAULT_DOCUMENT_BYTES
    video_probe_bytes: int = VIDEO_BYTES  # 0: no video probe

    def size_of(self, kind: str) -> int:
        return {"image": self.image_bytes, "document": self.document_bytes, "video": self.video_probe_bytes}[kind]

    def describe(self) -> str:
        mix = ", ".join(f"{k} {v:.0%}" for k, v in self.shares)
        return f"{mix}; image {self.image_bytes} B, document {self.document_bytes} B (uploaded once, sent by media_id)"


class KindSequence:
    """Smooth weighted round robin: any prefix of the sequence is as close to the shares as it can be, so
    a short run has the mix too, and the kinds interleave instead of coming in blocks."""

    def __init__(self, shares: tuple[tuple[str, float], ...]) -> None:
        self._shares = shares
        self._current = {k: 0.0 for k, _ in shares}

    def next(self) -> str:
        for kind, share in self._shares:
            self._current[kind] += share
        kind = max(self._current, key=lambda k: self._current[k])
        self._current[kind] -= 1.0
        return kind


# ------------------------------------------------------------------ synthetic files
def _png(size: int) -> bytes:
    """A valid grey PNG of exactly `size` bytes (at least ~1.1 kB): random rows in stored (uncompressed)
    deflate, padded to the size with an ancillary chunk."""
    head = b"\x89PNG\r\n\x1a\n"

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    width = 1024
    # stored deflate: 2 zlib header bytes + 5 bytes per 65535-byte block + 4 adler bytes
    fixed = len(head) + 25 + 12 + 12 + 2 + 4
    raw_budget = size - fixed
    rows = max(1, raw_budget // (width + 1 + 1))
    while True:
        raw_len = rows * (width + 1)
        blocks = -(-raw_len // 65535)
        if fixed + raw_len + 5 * blocks <= size - 12 or rows == 1:
            break
        rows -= 1
    raw = b"".join(b"\x00" + os.urandom(width) for _ in range(rows))
    ihdr = struct.pack(">IIBBBBB", width, rows, 8, 0, 0, 0, 0)
    png = head + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")
    pad = size - len(png)
    if pad >= 12:  # the rest as an ancillary chunk viewers skip
        png = png[:-12] + chunk(b"tEXt", b"c\x00" + os.urandom(pad - 12 - 2)) + png[-12:]
    return png


def _pdf(size: int) -> bytes:
    tail = b"\nendstream\nendobj\ntrailer\n<< /Size 2 >>\n%%EOF\n"

    def head(n: int) -> bytes:
        return b"%%PDF-1.4\n1 0 obj\n<< /Length %d >>\nstream\n" % n

    body_len = max(0, size - len(tail) - len(head(0)))
    while body_len and len(head(body_len)) + body_len + len(tail) > size:
        body_len -= 1
    return head(body_len) + os.urandom(body_len) + tail


def _mp4(size: int) -> bytes:
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 0x200) + b"isomiso2"
    mdat_len = max(8, size - len(ftyp))
    return ftyp + struct.pack(">I", mdat_len) + b"mdat" + os.urandom(mdat_len - 8)


def synthetic(kind: str, size: int) -> tuple[bytes, str, str]:
    """(bytes, mimetype, file name) of a well-formed file of `kind` and exactly `size` bytes."""
    if kind == "image":
        return _png(size), "image/png", "bench.png"
    if kind == "document":
        return _pdf(size), "application/pdf", "bench.pdf"
    if kind == "video":
        return _mp4(size), "video/mp4", "bench.mp4"
    raise ValueError(f"no synthetic file for {kind}")


# ------------------------------------------------------------------ upload and bodies
@dataclass(frozen=True)
class Uploaded:
    kind: str
    media_id: str
    size: int
    sha256: str
    mimetype: str
    filename: str
    upload_ms: float


async def upload(api: httpx.AsyncClient, ws: str, kind: str, size: int) -> Uploaded:
    data, mimetype, filename = synthetic(kind, size)
    started = time.monotonic()
    resp = await api.post(f"/v1/workspaces/{ws}/media", files={"file": (filename, data, mimetype)},
                          timeout=UPLOAD_TIMEOUT_S)
    if resp.status_code != 201:
        raise RuntimeError(f"upload of a {kind} ({size} B) -> {resp.status_code} {resp.text[:300]}")
    body = resp.json()
    if body["sha256"] != hashlib.sha256(data).hexdigest() or body["size"] != len(data):
        raise RuntimeError(f"upload of a {kind}: the service stored other bytes than were sent")
    return Uploaded(kind, body["media_id"], len(data), body["sha256"], mimetype, filename,
                    round((time.monotonic() - started) * 1000, 1))


@dataclass
class MixPlan:
    spec: MixSpec
    media: dict[str, Uploaded] = field(default_factory=dict)

    @classmethod
    async def prepare(cls, api: httpx.AsyncClient, ws: str, spec: MixSpec) -> MixPlan:
        plan = cls(spec)
        for kind, _ in spec.shares:
            if kind != "text":
                plan.media[kind] = await upload(api, ws, kind, spec.size_of(kind))
        return plan

    def sequence(self) -> KindSequence:
        return KindSequence(self.spec.shares)

    def body(self, kind: str, to: str, session_id: str, text: str, priority: str) -> dict[str, Any]:
        common = {"session_id": session_id, "to": to, "priority": priority}
        if kind == "text":
            return {**common, "text": text}
        return media_body(common, kind, self.media[kind], text)

    def bytes_of(self, kind: str) -> int:
        return self.media[kind].size if kind in self.media else 0


def media_body(common: dict[str, Any], kind: str, media: Uploaded, caption: str) -> dict[str, Any]:
    body: dict[str, Any] = {**common, "type": kind, "media": {"media_id": media.media_id}}
    if Kind(kind) in CAPTION_KINDS:
        body["caption"] = caption
    if kind == "document":
        body["filename"] = media.filename
    return body


# ------------------------------------------------------------------ the phone's side
def inbox_key(entry: dict[str, Any]) -> str:
    """What identifies a bench message in a phone's inbox: a media's caption, else the body."""
    return str(entry.get("caption") or entry.get("body") or "")


async def inbox_entries(phones: httpx.AsyncClient, number: str) -> list[dict[str, Any]]:
    reply = await phones.get(f"/_phone/{number}/inbox")
    reply.raise_for_status()
    return list(reply.json()["messages"])


def media_corrupted(entries: list[dict[str, Any]], prefix: str, expected: dict[str, str]) -> int:
    """Delivered media (of this run) whose bytes on the phone are not the uploaded ones.
    `expected`: message text -> uploaded sha256."""
    bad = 0
    for entry in entries:
        key = inbox_key(entry)
        if key.startswith(prefix) and key in expected:
            media = entry.get("media")
            if not isinstance(media, dict) or media.get("sha256") != expected[key]:
                bad += 1
    return bad


# ------------------------------------------------------------------ what the step adds
def service_cpu_s(cpu: dict[str, Any]) -> float:
    wall = float(cpu.get("wall_s") or 0.0)
    return sum(v * wall for k, v in cpu.get("by_component_cores", {}).items() if k not in NOT_SERVICE)


def mix_summary(plan: MixPlan, kinds: dict[str, str], accepted: dict[str, float], acked_at: dict[str, float],
                delivered: Counter[str], corrupted: int, cpu: dict[str, Any]) -> dict[str, Any]:
    """`kinds`/`accepted`/`acked_at`: message text -> kind / accept time / ack time (acked ones only);
    `delivered`: message text -> times on the phone."""
    by_kind: dict[str, dict[str, Any]] = {}
    media_bytes = 0
    for text, kind in kinds.items():
        row = by_kind.setdefault(kind, {"planned": 0, "accepted": 0, "acked": 0, "delivered": 0, "ack_ms": []})
        row["planned"] += 1
        if text in accepted:
            row["accepted"] += 1
        if text in acked_at:
            row["acked"] += 1
            row["ack_ms"].append((acked_at[text] - accepted[text]) * 1000)
        if delivered.get(text, 0) >= 1:
            row["delivered"] += 1
            media_bytes += plan.bytes_of(kind)
    for row in by_kind.values():
        row["accept_to_ack_ms"] = to_jsonable(Stats.of(row.pop("ack_ms")))
    cpu_s = service_cpu_s(cpu)
    media_mb = media_bytes / 1e6
    return {
        "mix": plan.spec.describe(),
        "uploads": {k: to_jsonable(u) for k, u in plan.media.items()},
        "by_kind": by_kind,
        "media_delivered_mb": round(media_mb, 2),
        "media_corrupted": corrupted,
        "service_cpu_s": round(cpu_s, 2),
        # every CPU second of the service during the step, text messages' included: an upper bound
        "service_cpu_s_per_media_mb": round(cpu_s / media_mb, 3) if media_mb else None,
    }


# ------------------------------------------------------------------ the video probe
def _service_pids(cpu: CpuAccount) -> dict[int, str]:
    return {pid: label for pid, (label, _) in cpu.snapshot().per_pid.items() if label not in NOT_SERVICE}


def _measure(pids: dict[int, str]) -> tuple[Mem, dict[str, int]]:
    total, by = Mem(), Counter[str]()
    for pid, label in pids.items():
        mem = rollup(pid)
        if mem is not None:
            total = total + mem
            by[label] += mem.pss
    return total, dict(by)


class MemorySampler:
    """PSS of the service's processes (the bench, its simulator and the webhook receiver left out), sampled
    in a thread every SAMPLE_EVERY_S; keeps the baseline, the peak and the peak per component."""

    def __init__(self, cpu: CpuAccount) -> None:
        self._cpu = cpu
        self.samples: list[tuple[float, int]] = []
        self.peak_by: dict[str, int] = {}
        self._stop = asyncio.Event()

    async def sample_once(self) -> tuple[Mem, dict[str, int]]:
        mem, by = await asyncio.to_thread(lambda: _measure(_service_pids(self._cpu)))
        self.samples.append((time.monotonic(), mem.pss))
        for label, pss in by.items():
            self.peak_by[label] = max(self.peak_by.get(label, 0), pss)
        return mem, by

    async def run(self) -> None:
        while not self._stop.is_set():
            await self.sample_once()
            try:
                await asyncio.wait_for(self._stop.wait(), SAMPLE_EVERY_S)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()


async def video_probe(live: Any, ws: str, size: int, timeout_s: float = 180.0) -> dict[str, Any]:
    """Upload a `size`-byte MP4, send it by media_id to the first linked session's recipient, and sample
    the service's memory from before the upload until the ack (or failure, or `timeout_s`)."""
    link = live.links[0]
    sampler = MemorySampler(live.harness.cpu)
    baseline_samples = []
    for _ in range(4):
        mem, base_by = await sampler.sample_once()
        baseline_samples.append(mem.pss)
        await asyncio.sleep(SAMPLE_EVERY_S)
    baseline = sorted(baseline_samples)[len(baseline_samples) // 2]
    sampler.peak_by = {}
    task = asyncio.create_task(sampler.run())
    tag = f"video-{os.urandom(3).hex()}"
    caption = f"bench {tag} #000000"
    outcome: dict[str, Any] = {"size_bytes": size}
    upload_done: float | None = None
    try:
        uploaded = await upload(live.api, ws, "video", size)
        upload_done = time.monotonic()
        outcome["upload_ms"] = uploaded.upload_ms
        body = media_body({"session_id": link.session_id, "to": link.recipient, "priority": "normal"}, "video",
                          uploaded, caption)
        accept = time.time()
        resp = await live.api.post(f"/v1/workspaces/{ws}/messages", json=body, headers={"Idempotency-Key": tag})
        outcome["accept_status"] = resp.status_code
        if resp.status_code == 202:
            mid = resp.json()["message_id"]
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                t = live.timeline.messages.get(mid)
                if t is not None and (t.ack_at is not None or t.failed_reason is not None):
                    outcome["accept_to_ack_ms"] = round((t.ack_at - accept) * 1000, 1) if t.ack_at else None
                    outcome["failed_reason"] = t.failed_reason
                    break
                await asyncio.sleep(0.1)
            else:
                outcome["timed_out"] = True
            await asyncio.sleep(1.0)  # the sender lets go of its buffers after the ack
        else:
            outcome["accept_error"] = resp.text[:300]
        entries = await inbox_entries(live.phones, link.recipient)
        outcome["delivered_intact"] = media_corrupted(entries, caption, {caption: uploaded.sha256}) == 0 and any(
            inbox_key(e) == caption for e in entries)
    except (httpx.HTTPError, RuntimeError) as exc:  # a probe that cannot run is a result, not a lost report
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        sampler.stop()
        await task
    after_upload = [pss for at, pss in sampler.samples if upload_done is not None and at >= upload_done]
    peak = max((pss for _, pss in sampler.samples), default=baseline)
    growth = {label: to_mb(pss - base_by.get(label, 0)) for label, pss in sampler.peak_by.items()}
    return {
        **outcome,
        "baseline_pss_mb": to_mb(baseline),
        "peak_pss_mb": to_mb(peak),
        "peak_over_baseline_mb": to_mb(peak - baseline),
        "peak_while_sending_over_baseline_mb": to_mb(max(after_upload, default=baseline) - baseline),
        "largest_growth_by_component_mb": dict(sorted(growth.items(), key=lambda kv: -kv[1])[:6]),
        "samples": len(sampler.samples),
        "sample_every_s": SAMPLE_EVERY_S,
    }

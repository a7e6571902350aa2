"""`python -m wa_ray.bench crypto`: AES-256-GCM of a session's auth state with wa_ray/crypto.py.

A linked session's state (Playwright storage_state with IndexedDB) is encrypted
on every save and decrypted on every restore. Per run: `encrypt()` then
`decrypt()` of one blob of `--size-mb` MB (random bytes: GCM does not care
what it encrypts), timed with perf_counter; the median over `--runs` runs is
the headline. Baseline in the same run: the bare `AESGCM` primitive from
`cryptography` on the same bytes (so the ratio is the wrapper's own cost), and
for scale the FileAuthStore round trip the product really does (encrypt +
write + fsync + rename, then read + decrypt) into a temp dir.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from wa_ray.bench.output import Envelope, machine_without_service, median, pct, progress, ratio, table, write

GOAL_MS = 100.0


@dataclass(frozen=True)
class CryptoConfig:
    size_mb: float = 10.0
    runs: int = 20
    warmup: int = 2
    out_dir: Path | None = None


def run_crypto(cfg: CryptoConfig, console: Console) -> tuple[Envelope, dict[str, Path]]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from wa_ray.crypto import MasterKey, decrypt, encrypt
    from wa_ray.storage.auth_store import FileAuthStore

    env = Envelope("crypto", machine=machine_without_service())
    size = int(cfg.size_mb * 1_000_000)
    plain = os.urandom(size)
    key = MasterKey.from_b64(MasterKey.generate_b64())
    samples: dict[str, list[float]] = {"encrypt": [], "decrypt": [], "encrypt_decrypt": [], "aesgcm_primitive": [],
                                      "file_store_save_load": []}
    aes = AESGCM(key.key)
    header = b"WAR1" + key.key_id

    async def store_round(store: FileAuthStore) -> float:
        t0 = time.perf_counter()
        await store.save("bench", "crypto", plain)
        back = await store.load("bench", "crypto")
        elapsed = time.perf_counter() - t0
        assert back == plain
        return elapsed

    with tempfile.TemporaryDirectory(prefix="wa-ray-bench-crypto-") as tmp, progress(console) as bar:
        store = FileAuthStore(tmp, [key])
        task = bar.add_task(f"crypto: {cfg.size_mb:g} MB x {cfg.runs}", total=cfg.warmup + cfg.runs, info="")
        for i in range(cfg.warmup + cfg.runs):
            t0 = time.perf_counter()
            blob = encrypt(key, plain)
            t1 = time.perf_counter()
            back = decrypt([key], blob)
            t2 = time.perf_counter()
            assert back == plain
            nonce = os.urandom(12)
            t3 = time.perf_counter()
            raw = aes.encrypt(nonce, plain, header)
            aes.decrypt(nonce, raw, header)
            t4 = time.perf_counter()
            stored = asyncio.run(store_round(store))
            if i >= cfg.warmup:
                samples["encrypt"].append((t1 - t0) * 1000)
                samples["decrypt"].append((t2 - t1) * 1000)
                samples["encrypt_decrypt"].append((t2 - t0) * 1000)
                samples["aesgcm_primitive"].append((t4 - t3) * 1000)
                samples["file_store_save_load"].append(stored * 1000)
            bar.update(task, advance=1, info=f"last enc+dec {(t2 - t0) * 1000:.1f} ms")
        blob_bytes = len(blob)

    stats = {k: {"n": len(v), "median_ms": median(v), "p95_ms": pct(v, 95), "min_ms": round(min(v), 2),
                 "max_ms": round(max(v), 2)} for k, v in samples.items()}
    headline = stats["encrypt_decrypt"]["median_ms"]
    mb_s = round(2 * size / 1e6 / (headline / 1000), 0) if headline else None
    env.results = {
        "size_bytes": size, "blob_bytes": blob_bytes, "overhead_bytes": blob_bytes - size, "runs": cfg.runs,
        "warmup_runs_not_recorded": cfg.warmup, "stats": stats,
        "wrapper_vs_primitive_ratio": ratio(headline, stats["aesgcm_primitive"]["median_ms"]),
        "file_store_vs_crypto_ratio": ratio(stats["file_store_save_load"]["median_ms"], headline),
        "throughput_mb_s_enc_plus_dec": mb_s, "samples_ms": {k: [round(x, 3) for x in v] for k, v in samples.items()},
    }
    env.goal(f"encrypt+decrypt of {cfg.size_mb:g} MB (median of {cfg.runs})", f"well under {GOAL_MS:g} ms",
             f"{headline} ms", headline is not None and headline < GOAL_MS)
    env.notes.append("baseline 'aesgcm_primitive' is cryptography's AESGCM on the same bytes and header, without "
                     "wa_ray/crypto.py around it; the ratio is the wrapper's overhead (key id, header, copying).")
    env.notes.append("file_store_save_load is storage.auth_store.FileAuthStore.save+load (encrypt, write, fsync, "
                     "rename, read, decrypt) on the temp dir's filesystem: what a save/restore really costs.")
    rows = [[name, s["n"], s["median_ms"], s["p95_ms"], s["min_ms"], s["max_ms"]] for name, s in stats.items()]
    body = "\n".join([
        "## Result", "",
        f"{cfg.size_mb:g} MB of state, {cfg.runs} runs (+{cfg.warmup} warm-up). Blob overhead "
        f"{blob_bytes - size} bytes. enc+dec throughput {mb_s} MB/s.", "",
        table(["operation", "n", "median ms", "p95 ms", "min ms", "max ms"], rows), "",
        f"wa_ray/crypto.py vs bare AESGCM: **{env.results['wrapper_vs_primitive_ratio']}x**; "
        f"FileAuthStore round trip vs crypto alone: {env.results['file_store_vs_crypto_ratio']}x.",
    ])
    env.finish()
    return env, write(env, body, cfg.out_dir or Path(__file__).resolve().parent / "results",
                      plot=lambda p: _plot(samples, p, cfg))


def _plot(samples: dict[str, list[float]], path: Path, cfg: CryptoConfig) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = list(samples)
    ax.boxplot([samples[n] for n in names], showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.axhline(GOAL_MS, color="red", linestyle="--", linewidth=1, label=f"goal {GOAL_MS:g} ms")
    ax.set_ylabel("ms")
    ax.set_title(f"AES-256-GCM, {cfg.size_mb:g} MB state, {cfg.runs} runs", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def summary(env: Envelope) -> Any:
    from rich.table import Table

    t = Table(title="wa-ray crypto")
    for col in ("operation", "median ms", "p95 ms"):
        t.add_column(col)
    for name, s in env.results["stats"].items():
        t.add_row(name, str(s["median_ms"]), str(s["p95_ms"]))
    return t

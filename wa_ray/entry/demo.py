"""The guided demo: link a simulated phone, send a message, watch events arrive."""

from __future__ import annotations

import asyncio
import sys

import httpx
import segno
from rich.console import Console

from wa_ray.signing import HmacAuth
from wa_ray.entry.sse_client import read_events

WORKSPACE = "acme"
SESSION = "demo"
RECIPIENT = "15550002"


def run_demo(console: Console, base_url: str, sim_url: str, key_id: str, secret: str, phone: str) -> None:
    asyncio.run(_demo(console, base_url, sim_url, key_id, secret, phone))


async def _demo(console: Console, base_url: str, sim_url: str, key_id: str, secret: str, phone: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, auth=HmacAuth(key_id, secret), timeout=30) as api, \
            httpx.AsyncClient(base_url=sim_url, timeout=10) as sim:
        token = (await api.post(f"/v1/workspaces/{WORKSPACE}/stream-tokens")).json()["token"]
        sse_url = f"{base_url}/v1/workspaces/{WORKSPACE}/events?token={token}"
        console.print(f"API key: [bold]{key_id}[/] (secret only in WA_API_KEY_SECRET if you set it)")
        console.print(f"Live events (SSE, token valid 5 min): [cyan]curl -N '{sse_url}'[/]")
        minted = await api.post("/v1/console-tokens", json={"workspace_id": WORKSPACE})
        if minted.status_code == 201:
            console.print(f"Console in a browser: [cyan]{base_url}/console#token={minted.json()['token']}[/]")
        async with httpx.AsyncClient(timeout=None) as raw, raw.stream("GET", sse_url) as stream:
            linked = False

            async def show_and_scan(qr: str) -> None:
                nonlocal linked
                segno.make(qr, error="l").terminal(compact=True)
                console.print(f"Scan it with the simulated phone {phone}:\n  curl -X POST {sim_url}/_phone/{phone}"
                              f"/scan -H 'content-type: application/json' -d '{{\"qr\": \"{qr}\"}}'")
                if sys.stdin.isatty():
                    console.print("...or press Enter and the demo scans it for you.")
                    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                # a QR that changed meanwhile is refused: the next session.qr is scanned instead
                linked = (await sim.post(f"/_phone/{phone}/scan", json={"qr": qr})).status_code == 200

            created = await api.post(f"/v1/workspaces/{WORKSPACE}/sessions", json={"session_id": SESSION})
            # Run again in the same data dir, the number exists already and may have shown its QR before this
            # stream opened: scan the current one instead of waiting for the next.
            if created.is_success and created.json().get("state") == "qr_required":
                current = await api.get(f"/v1/workspaces/{WORKSPACE}/sessions/{SESSION}/qr")
                if current.status_code == 200:
                    await show_and_scan(current.json()["qr"])
            async for event in read_events(stream):
                body = event.json()
                console.print(f"[dim]{event.id}[/] [bold]{event.event}[/] {body['data']}")
                if event.event == "session.qr" and not linked:
                    await show_and_scan(body["data"]["qr"])
                elif event.event == "session.ready":
                    reply = await api.post(f"/v1/workspaces/{WORKSPACE}/messages",
                                           json={"session_id": SESSION, "to": RECIPIENT, "text": "Hello from wa-ray"})
                    console.print(f"POST /messages -> {reply.status_code} {reply.json()}")
                elif event.event == "message.ack" and body["data"]["status"] == "delivered":
                    inbox = (await sim.get(f"/_phone/{RECIPIENT}/inbox")).json()
                    console.print(f"Phone {RECIPIENT} received: {[m['body'] for m in inbox['messages']]}")
                    console.print(f"[bold green]End to end works.[/] Send an inbound message with:\n  curl -X POST "
                                  f"{sim_url}/_phone/{RECIPIENT}/messages -H 'content-type: application/json' "
                                  f"-d '{{\"to\": \"{phone}\", \"body\": \"hi\"}}'\nCtrl-C stops the demo.")

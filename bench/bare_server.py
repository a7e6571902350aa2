"""The baseline of `bench api`: a bare Starlette JSON endpoint on uvicorn, loopback, its own process.

`POST /v1/workspaces/{ws}/messages` parses the JSON body and answers 202
`{message_id, status: "queued", provider}` like wa-ray, doing nothing else: no
auth check, no Redis. The same client (signed requests, same payload) drives it.

    python -m wa_ray.bench.bare_server --port 8123
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_ids = itertools.count()


async def messages(request: Request) -> JSONResponse:
    body = await request.json()
    if not isinstance(body, dict) or "to" not in body:
        return JSONResponse({"error": {"code": "invalid", "message": "to is required", "details": {}}}, 422)
    return JSONResponse({"message_id": f"msg_{next(_ids):012d}", "status": "queued", "provider": "webjs"}, 202)


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/workspaces/{ws}/messages", messages, methods=["POST"]),
                        Route("/healthz", healthz)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)

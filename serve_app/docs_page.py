"""/docs: Swagger UI from our own assets, so the API reference renders offline and under a strict CSP.

FastAPI's own /docs page loads Swagger UI from a CDN and starts it with an inline script: blank without the
internet, and impossible under `script-src 'self'`. Here the page is static HTML of ours, the Swagger UI
bundle and stylesheet come from the `fastapi-offline` package (a maintained copy of swagger-ui-dist, 5.x,
which reads OpenAPI 3.1) and are served from this origin, and the start-up call is a file of ours too. The
page needs no other origin: `connect-src 'self'` covers /openapi.json and "Try it out".

The assets are public (like /openapi.json): the page shows the API's shape, never a key or a tenant's data.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["docs"])

# Swagger UI sets styles through the DOM (allowed), and draws its icons as data: SVG images.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
_VENDOR = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wa-ray API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

_START = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
"""


@cache
def _vendor(name: str) -> bytes:
    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


@router.get("/docs", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=_HEADERS)


@router.get("/docs/start.js", include_in_schema=False)
async def start() -> Response:
    return Response(_START, media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@router.get("/docs/swagger-ui-bundle.js", include_in_schema=False)
async def bundle() -> Response:
    return Response(_vendor("swagger-ui-bundle.js"), media_type=_VENDOR["swagger-ui-bundle.js"], headers=_HEADERS)


@router.get("/docs/swagger-ui.css", include_in_schema=False)
async def stylesheet() -> Response:
    return Response(_vendor("swagger-ui.css"), media_type=_VENDOR["swagger-ui.css"], headers=_HEADERS)

"""/console: a small operator page served by the service (plain JS, no build step).

How it authenticates without an API secret in the browser: a backend (or the
operator's `wa-ray keys console-token`) mints a console token with a signed
call (`POST /v1/console-tokens`): short-lived (15 min default, 12 h max),
bound to one workspace (an admin may mint an all-workspace one), never more
than its issuer's role. The person opens `/console#token=...`; the fragment
never reaches the server or its logs. The page posts the token once to
`POST /console/session`, which answers with an HttpOnly, SameSite=Strict
cookie holding it, and drops the fragment from the address bar, so scripts
cannot read the credential afterwards. The page then calls the ordinary /v1
API and the events stream with that cookie; unsafe calls must also carry
`X-WA-Console: 1`, which a cross-site form cannot send. Sign-out revokes the
token server side; revoking the issuing key revokes it too.
"""

from __future__ import annotations

import time
from importlib import resources

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from wa_ray.serve_app.auth import CONSOLE_COOKIE, CONSOLE_HEADER, Principal
from wa_ray.serve_app.context import AppContext
from wa_ray.serve_app.deps import ctx
from wa_ray.serve_app.errors import ApiError
from wa_ray.serve_app.models import ConsoleLogin, ConsoleWhoAmI
from wa_ray.serve_app.openapi import errors
from wa_ray.storage import keys

router = APIRouter(tags=["console"])

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def _asset(name: str) -> str:
    return resources.files("wa_ray.serve_app").joinpath(f"console_{name}" if name in _FILES else "console.html").read_text()


@router.get("/console", include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_asset("index"), headers=_HEADERS)


@router.get("/console/app.js", include_in_schema=False)
async def script() -> Response:
    return Response(_asset("app.js"), media_type=_FILES["app.js"], headers=_HEADERS)


@router.get("/console/app.css", include_in_schema=False)
async def style() -> Response:
    return Response(_asset("app.css"), media_type=_FILES["app.css"], headers=_HEADERS)


async def _whoami(c: AppContext, who: Principal) -> ConsoleWhoAmI:
    workspaces = [who.workspace_id] if who.workspace_id else sorted(await c.redis.smembers(keys.workspaces()))
    return ConsoleWhoAmI(role=who.role, workspace_id=who.workspace_id, workspaces=workspaces,  # type: ignore[arg-type]
                         expires_at=who.expires_at)


@router.post("/console/session", response_model=ConsoleWhoAmI, responses=errors(400, 413, 422),
             summary="Exchange a console token for the console's HttpOnly cookie")
async def login(body: ConsoleLogin, request: Request, response: Response,
                c: AppContext = Depends(ctx)) -> ConsoleWhoAmI:
    if request.headers.get(CONSOLE_HEADER) != "1":
        raise ApiError(403, "csrf", f"console calls must carry the {CONSOLE_HEADER} header")
    who = await c.auth.from_token(body.token, "console")
    request.state.principal = who
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(CONSOLE_COOKIE, body.token, max_age=max(1, (who.expires_at or 0) - int(time.time())),
                        path="/", httponly=True, samesite="strict", secure=secure)
    return await _whoami(c, who)


@router.get("/console/session", response_model=ConsoleWhoAmI, responses=errors(),
            summary="Who the console cookie belongs to")
async def whoami(request: Request, c: AppContext = Depends(ctx)) -> ConsoleWhoAmI:
    token = request.cookies.get(CONSOLE_COOKIE)
    if not token:
        raise ApiError(401, "unauthenticated", "no console session")
    return await _whoami(c, await c.auth.from_token(token, "console"))


@router.delete("/console/session", status_code=204, response_class=Response, responses=errors(),
               summary="Sign out: revoke the console token and clear the cookie")
async def logout(request: Request, c: AppContext = Depends(ctx)) -> Response:
    if request.headers.get(CONSOLE_HEADER) != "1":
        raise ApiError(403, "csrf", f"console calls must carry the {CONSOLE_HEADER} header")
    token = request.cookies.get(CONSOLE_COOKIE)
    if not token:
        raise ApiError(401, "unauthenticated", "no console session")
    who = await c.auth.from_token(token, "console")
    request.state.principal = who
    await c.auth.revoke_token(who)
    response = Response(status_code=204)
    response.delete_cookie(CONSOLE_COOKIE, path="/", httponly=True, samesite="strict")
    return response

"""Access and request ids: a plain ASGI middleware around the app.

* API key (`parareason serve --api-key`, or PARAREASON_API_KEY): every path except
  `GET /health` needs `Authorization: Bearer <key>` (what every OpenAI client sends
  from its `api_key`); otherwise 401 with an OpenAI error body, code
  `invalid_api_key`. Keys are compared in constant time.
* `x-request-id`: every response carries one. A completion's is its response `id`
  (set by the handler); other responses echo the client's own `x-request-id`, or get
  a fresh one.

Pure ASGI on purpose: Starlette's `BaseHTTPMiddleware` wraps `receive`, and the
handlers would no longer see a client disconnect (which cancels its request).
"""
from __future__ import annotations

import hmac
import json
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parareason.server.responses import error_body

OPEN_PATHS = frozenset({"/health"})  # liveness probes carry no key


def authorized(headers: Headers, api_key: str) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


class AccessMiddleware:
    def __init__(self, app: ASGIApp, api_key: str | None = None) -> None:
        self.app, self.api_key = app, api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        fallback_id = headers.get("x-request-id") or f"req-{uuid.uuid4().hex}"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                if "x-request-id" not in out:
                    out["x-request-id"] = fallback_id
            await send(message)

        if self.api_key and scope["path"] not in OPEN_PATHS and not authorized(headers, self.api_key):
            body = json.dumps(error_body("missing or wrong API key: send `Authorization: Bearer <key>` (the "
                                         "openai client's api_key)", code="invalid_api_key")).encode()
            await send_with_id({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer")]})
            await send_with_id({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_id)

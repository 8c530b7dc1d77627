"""Request bodies are admitted before they are read, and counted while they arrive.

A body that declares its length is refused (413) at once when the length is over the limit; a body
sent chunked has no length, so it used to be read whole before anything was checked (two 40 MB
bodies without a key took 1.1 GiB of the server's memory; a 7.2 MB one with a key was stored under a
2 MB limit). :class:`BodyGate`, in front of every route, now:

1. checks the key before a single byte of a body is read: a request with a body (a length above 0,
   or chunked) whose key cannot make it (the scope its route asks for) is answered 401 or 403 there,
   with the route's own words;
2. counts the body's bytes as the server receives them and answers 413 as soon as the count passes
   the limit (the route stops reading; nothing of the request is stored).

The limit is ``max_request_bytes``, except for the routes with a larger one of their own (a model
or policy import: ``max_model_bytes``; a restore: ``max_restore_bytes``). A request without a body goes
straight through (the hot path pays nothing)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.responses import JSONResponse

#: the routes whose bodies may be larger than any other request's: path -> the setting of their limit
OWN_LIMITS = {"/v1/models/import": "max_model_bytes", "/v1/conversation-policies/import": "max_model_bytes",
              "/v1/admin/restore": "max_restore_bytes"}


class BodyTooLarge(HTTPException):
    """Raised by the counting ``receive`` when a body passes its limit: an HTTPException, so a route
    reading the body (FastAPI's parsing, ``request.stream()``) answers 413 with these words."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, f"request body over {limit} bytes ({setting}); nothing of it was stored")


def scoped_routes(routes) -> list[tuple]:
    """(methods, path regex, scope, route) of each of ``routes`` (FastAPI routes) that asks
    for a key scope (its ``read``, ``write`` or ``admin`` dependency, :func:`penchant.serve.deps.scope`)."""
    table = []
    for route in routes:
        needed = next((d.dependency.scope for d in getattr(route, "dependencies", ())
                       if getattr(d.dependency, "scope", None)), None)
        if needed is not None:
            table.append((route.methods, route.path_regex, needed, route))
    return table


class BodyGate:
    """ASGI middleware: the key of a request with a body is checked before the body is read, and
    the body is counted as it arrives (see the module's notes). ``service``: the app's
    :class:`~penchant.serve.deps.Service` (its key cache and settings); ``routes``: the app's routes,
    to find the key scope a request's route asks for."""

    def __init__(self, app, service, routes) -> None:
        self.app, self.service, self.routes = app, service, scoped_routes(routes)
        settings = service.settings
        self.default = (settings.max_request_bytes, "max_request_bytes")
        self.limits = {path: (getattr(settings, setting), setting) for path, setting in OWN_LIMITS.items()}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and (length is None or length == b"0"):
            await self.app(scope, receive, send)  # no body: nothing to admit or count
            return
        limit, setting = self.limits.get(scope["path"], self.default)
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _answer(scope, receive, send, BodyTooLarge(limit, setting))
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(scope, receive, send, refusal)
            return
        received, started = 0, False

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        async def watched(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as e:  # raised where no route turned it into its answer
            if started:
                raise
            await _answer(scope, receive, send, e)

    def _refusal(self, scope) -> HTTPException | None:
        """401/403 when the request's key cannot make the request its route is (None: admitted;
        the route then checks again, with the rate limit, from the key cache)."""
        from penchant.serve.deps import key_refusal

        for methods, path, needed, route in self.routes:
            if scope["method"] in methods and path.match(scope["path"]):
                scope.setdefault("route", route)  # what the metrics name the request by
                authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
                return key_refusal(self.service, authorization, needed)[0]
        return None


async def _answer(scope, receive, send, error: HTTPException) -> None:
    response = JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
    await response(scope, receive, send)

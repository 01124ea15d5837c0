"""The web app: four pages (one HTML shell, vanilla JS), a JSON API over :class:`Catalog`, the audio and
spectrogram of each sample. Only GET and HEAD; nothing outside the build folder and the app's own files
is ever opened."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataengine.serve.catalog import TEXT_FILTERS, Catalog, Filters, QueryError
from dataengine.serve.media import parse_range, spectrogram_png
from dataengine.tarindex import ShardIndex, read_range

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
GET = ["GET", "HEAD"]


class _Headers:
    """Adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                ]
            await send(message)

        await self.app(scope, receive, sending)


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return Response(body, status, media_type="application/json", headers={"cache-control": "no-store"})


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


def _float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise QueryError(f"{name}: not a finite number")
    return value


def _int(text: str | None, name: str, default: int) -> int:
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise QueryError(f"{name}: {text!r} is not a whole number") from None


def filters_from(request: Request) -> Filters:
    """Browse filters from the query string: ``task=…&reason=…&range=snr_db:10:&sort=snr_db&order=desc``."""
    params = request.query_params
    ranges = []
    for spec in params.getlist("range"):
        name, _, bounds = spec.partition(":")
        lo, _, hi = bounds.partition(":")
        ranges.append(
            (name, _float(lo, f"range {name}") if lo else None, _float(hi, f"range {name}") if hi else None)
        )
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise QueryError("order must be asc or desc")
    return Filters(
        equal={k: params[k] for k in TEXT_FILTERS if params.get(k)},
        ranges=ranges,
        search=params.get("q", "").strip()[:200],
        sort=params.get("sort") or "index",
        descending=order == "desc",
        page=_int(params.get("page"), "page", 0),
        page_size=_int(params.get("size"), "size", 50),
    )


def create_app(out: Path, host: str = "127.0.0.1") -> Starlette:
    """The app over build ``out`` (raises ManifestError when it is not a complete build)."""
    catalog = Catalog(out)
    shards = ShardIndex()

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    def api(handler: Any) -> Any:
        def endpoint(request: Request) -> Response:
            try:
                return _json(handler(request))
            except QueryError as exc:
                return _error(str(exc))

        return endpoint

    def sample(request: Request) -> dict[str, Any]:
        sample_id = request.path_params["sample_id"]
        rows = catalog.rows_for(sample_id)
        if not rows:
            raise QueryError(f"no sample {sample_id!r} in this build")
        want = request.query_params.get("status")
        row = next((r for r in rows if r["status"] == want), rows[0])
        location = catalog.audio_location(row["status"], sample_id)
        record = None
        if location is not None:
            raw = shards.read(location[0], location[1], "json")
            record = json.loads(raw) if raw is not None else None
        return {
            "row": row,
            "others": [{"status": r["status"], "index": r["index"]} for r in rows if r is not row],
            "metrics": catalog.judged(row),
            "record": record,
            "has_audio": location is not None,
        }

    def explore(request: Request) -> dict[str, Any]:
        paths = {b["path"] for b in catalog.bounds()}
        changes = {k: _float(v, k) for k, v in request.query_params.items() if k in paths}
        unknown = sorted(set(request.query_params) - paths - {"focus"})
        if unknown:
            raise QueryError(f"no explorable bound {unknown[0]!r} in this build")
        return catalog.explore(changes, request.query_params.get("focus") or None)

    def member(request: Request, ext: str) -> tuple[Path, int, int] | None:
        location = catalog.audio_location(request.path_params["status"], request.path_params["sample_id"])
        if location is None:
            return None
        span = shards.locate(location[0], location[1], ext)
        return None if span is None else (location[0], *span)

    def audio(request: Request) -> Response:
        found = member(request, "flac")
        if found is None:
            return Response("no audio for this sample", 404, media_type="text/plain")
        path, offset, size = found
        headers = {"accept-ranges": "bytes", "cache-control": "max-age=3600"}
        try:
            wanted = parse_range(request.headers.get("range"), size)
        except ValueError:
            return Response(b"", 416, headers={"content-range": f"bytes */{size}"})
        start, end = wanted if wanted is not None else (0, size - 1)
        body = read_range(path, offset + start, end - start + 1) if request.method == "GET" else b""
        if wanted is None:
            return Response(
                body, 200, media_type="audio/flac", headers=headers | {"content-length": str(size)}
            )
        headers |= {"content-range": f"bytes {start}-{end}/{size}", "content-length": str(end - start + 1)}
        return Response(body, 206, media_type="audio/flac", headers=headers)

    def spectrogram(request: Request) -> Response:
        found = member(request, "flac")
        if found is None:
            return Response("no audio for this sample", 404, media_type="text/plain")
        png = spectrogram_png(read_range(*found))
        return Response(png, media_type="image/png", headers={"cache-control": "max-age=3600"})

    routes = [
        Route("/", page, methods=GET),
        Route("/browse", page, methods=GET),
        Route("/thresholds", page, methods=GET),
        Route("/sample/{sample_id:path}", page, methods=GET),
        Route("/api/overview", api(lambda r: catalog.overview()), methods=GET),
        Route("/api/facets", api(lambda r: catalog.facets()), methods=GET),
        Route("/api/samples", api(lambda r: catalog.browse(filters_from(r))), methods=GET),
        Route("/api/sample/{sample_id:path}", api(sample), methods=GET),
        Route("/api/bounds", api(lambda r: catalog.bounds()), methods=GET),
        Route("/api/explore", api(explore), methods=GET),
        Route("/audio/{status}/{sample_id:path}", audio, methods=GET),
        Route("/spectrogram/{status}/{sample_id:path}", spectrogram, methods=GET),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    allowed = list(LOOPBACK) + [host] if host in LOOPBACK else ["*"]  # DNS rebinding: loopback names only
    middleware = [Middleware(_Headers), Middleware(TrustedHostMiddleware, allowed_hosts=allowed)]
    return Starlette(routes=routes, middleware=middleware)

"""HTTP service over a product index: ``GET /search``, ``POST /search`` (photo upload), ``GET /health``, the page.

The index loads in a background thread at start-up, so ``/health`` answers 503 ("loading") until the
index and its query encoder are ready and 200 after; ``/search`` answers 503 meanwhile. Every bad
request gets a 4xx with a one-line ``detail``: 400 for empty, malformed or unknown parameters and
unreadable images, 413 for an oversized upload, 404 for an unknown photo id.

FastAPI is imported at module level (its annotations must resolve here); import this module only
when the ``search`` extra is installed.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from polymodal.search.encoders import QueryEncoder, load_query_encoder
from polymodal.search.index import ProductIndex, open_index
from polymodal.search.store import normalise_rows


@dataclass(frozen=True)
class Limits:
    """Input limits of the service (all enforced with a 4xx, never by truncation)."""

    max_query_chars: int = 200
    max_k: int = 100
    max_upload_bytes: int = 5 * 1024 * 1024
    min_image_side: int = 16
    max_image_pixels: int = 25_000_000  # guards against decompression bombs


@dataclass
class _State:
    ready: bool = False
    error: str | None = None
    index: ProductIndex | None = None
    encoder: QueryEncoder | None = None
    image_root: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def result_rows(index: ProductIndex, ids: list[str], scores: list[float]) -> list[dict[str, Any]]:
    """The JSON rows of a result list: id, score, name, the filter attributes and the photo's URL."""
    rows = []
    cat = index.catalog
    has_image = "image" in cat.columns
    for pid, score in zip(ids, scores, strict=True):
        item = cat.loc[pid]
        row: dict[str, Any] = {"id": pid, "score": round(float(score), 6), "name": str(item["name"])}
        for f in index.manifest["filter_fields"]:
            row[f] = str(item[f])
        if has_image and str(item["image"]):
            row["image_url"] = f"/images/{pid}"
        rows.append(row)
    return rows


def create_app(index_path: str | Path | None = None, *, index: ProductIndex | None = None,
               encoder: QueryEncoder | None = None, image_root: str | Path | None = None,
               limits: Limits | None = None, load_encoder: Callable[[ProductIndex], QueryEncoder] | None = None,
               background: bool = True) -> Any:
    """The FastAPI app.

    Args:
        index_path: an index folder to open at start-up (or pass an opened ``index``).
        encoder: the query encoder; default: the one stored in the index.
        image_root: folder the catalogue's relative ``image`` paths are under; default: the
            ``image_root`` recorded at build time.
        limits: input limits.
        load_encoder: builds the encoder from the index (tests pass a fake).
        background: load in a thread (``/health`` says "loading" meanwhile) instead of blocking start-up.
    """
    limits = limits or Limits()
    state = _State()

    def load() -> None:
        try:
            idx = index if index is not None else open_index(index_path)  # type: ignore[arg-type]
            enc = encoder or (load_encoder(idx) if load_encoder else load_query_encoder(idx.query_dir))
            enc.encode_text("warm up")  # load model weights now, not on the first user request
            root = image_root or idx.manifest.get("info", {}).get("image_root")
            with state.lock:
                state.index, state.encoder = idx, enc
                state.image_root = Path(root) if root else None
                state.ready = True
        except Exception as err:  # reported by /health; the process stays up to say why
            state.error = f"{type(err).__name__}: {err}"

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any):
        if background:
            threading.Thread(target=load, name="index-loader", daemon=True).start()
        else:
            load()
        yield

    app = FastAPI(title="polymodal product search", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default is a 422 with a nested list; one readable line is easier to act on.
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body"))
            parts.append(f"{where}: {e.get('msg')}")
        return JSONResponse({"detail": "; ".join(parts) or "malformed request"}, status_code=400)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return JSONResponse({"detail": "malformed Content-Length"}, status_code=400)
            # multipart overhead on top of the photo itself
            if int(length) > limits.max_upload_bytes + 64 * 1024:
                return JSONResponse({"detail": f"request body over {limits.max_upload_bytes} bytes"},
                                    status_code=413)
        return await call_next(request)

    def ready_state() -> tuple[ProductIndex, QueryEncoder]:
        if not state.ready or state.index is None or state.encoder is None:
            raise HTTPException(503, "index not loaded yet" if state.error is None else f"index failed: {state.error}")
        return state.index, state.encoder

    def parse_filters(request: Request, idx: ProductIndex, allowed_extra: set[str]) -> dict[str, str]:
        fields = idx.manifest["filter_fields"]
        filters = {}
        for key, value in request.query_params.multi_items():
            if key in allowed_extra:
                continue
            if key not in fields:
                raise HTTPException(400, f"unknown parameter {key!r}; filters: {', '.join(fields) or 'none'}")
            if value == "":
                continue  # an empty select on the page means "any"
            if value not in idx.filter_values.get(key, []):
                raise HTTPException(400, f"unknown value {value!r} for filter {key!r}")
            filters[key] = value
        return filters

    def check_query(q: str | None, required: bool) -> str | None:
        text = (q or "").strip()
        if not text:
            if required:
                raise HTTPException(400, "empty query: give q (text) or upload an image")
            return None
        if len(text) > limits.max_query_chars:
            raise HTTPException(400, f"query longer than {limits.max_query_chars} characters")
        return text

    def check_k(k: int) -> int:
        if not 1 <= k <= limits.max_k:
            raise HTTPException(400, f"k must be between 1 and {limits.max_k}, got {k}")
        return k

    def run_search(idx: ProductIndex, vector: np.ndarray, k: int, filters: dict[str, str]) -> list[dict[str, Any]]:
        hits = idx.store.search(vector, k, filters)
        return result_rows(idx, hits.ids, hits.scores)

    @app.get("/health")
    def health() -> JSONResponse:
        if state.ready and state.index is not None:
            return JSONResponse({"status": "ready", "count": state.index.manifest["count"],
                                 "version": state.index.path.name})
        status = "loading" if state.error is None else "error"
        return JSONResponse({"status": status, "detail": state.error}, status_code=503)

    @app.get("/filters")
    def filters() -> dict[str, list[str]]:
        idx, _ = ready_state()
        return idx.filter_values

    @app.get("/search")
    def search_get(request: Request, q: str | None = None, k: int = 10) -> list[dict[str, Any]]:
        idx, enc = ready_state()
        text = check_query(q, required=True)
        vector = enc.encode_text(text)  # type: ignore[arg-type]
        return run_search(idx, vector, check_k(k), parse_filters(request, idx, {"q", "k"}))

    @app.post("/search")
    def search_post(request: Request, q: Annotated[str | None, Form()] = None, k: Annotated[int, Form()] = 10,
                    image: Annotated[UploadFile | None, File()] = None) -> list[dict[str, Any]]:
        idx, enc = ready_state()
        has_image = image is not None and bool(image.filename)
        text = check_query(q, required=not has_image)
        parts = []
        if text:
            parts.append(enc.encode_text(text))
        if has_image:
            if not enc.supports_image:
                raise HTTPException(400, "this index has no image query encoder; search by text")
            photo = read_image(image, limits)  # type: ignore[arg-type]
            parts.append(enc.encode_image(photo))
        # Text and photo together: the mean of the two unit vectors (both in the product space).
        vector = normalise_rows(np.mean(parts, axis=0)[None])[0]
        return run_search(idx, vector, check_k(k), parse_filters(request, idx, set()))

    @app.get("/images/{pid}")
    def photo(pid: str) -> FileResponse:
        idx, _ = ready_state()
        if pid not in idx.catalog.index or "image" not in idx.catalog.columns:
            raise HTTPException(404, f"no product {pid!r}")
        rel = str(idx.catalog.loc[pid, "image"])
        path = (state.image_root / rel) if state.image_root else Path(rel)
        if not rel or not path.is_file():
            raise HTTPException(404, f"no photo for product {pid!r}")
        return FileResponse(path)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        from polymodal.search.page import PAGE_HTML

        return HTMLResponse(PAGE_HTML)

    app.state.search_state = state
    return app


def read_image(upload: Any, limits: Limits) -> Any:
    """Read an uploaded photo into an RGB ``PIL.Image``; HTTPException 400/413 on a bad or oversized one."""
    from PIL import Image, UnidentifiedImageError

    data = upload.file.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise HTTPException(413, f"image over {limits.max_upload_bytes} bytes")
    if not data:
        raise HTTPException(400, "empty image upload")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("JPEG", "PNG", "WEBP", "GIF", "BMP"):
                raise HTTPException(400, f"unsupported image format {img.format}; use JPEG, PNG or WebP")
            w, h = img.size
            if w * h > limits.max_image_pixels:
                raise HTTPException(413, f"image is {w}x{h} px, over {limits.max_image_pixels} pixels")
            if min(w, h) < limits.min_image_side:
                raise HTTPException(400, f"image is {w}x{h} px, below {limits.min_image_side} px on a side")
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise HTTPException(400, f"not a readable image ({type(err).__name__})") from None


def serve(index_path: str | Path, host: str = "127.0.0.1", port: int = 8000, image_root: str | Path | None = None,
          workers: int = 1) -> None:
    """Check the index is complete, then run the app under uvicorn (blocks)."""
    import uvicorn

    from polymodal.search.index import current_version, read_manifest

    read_manifest(current_version(index_path))  # refuse an incomplete index before binding the port
    app = create_app(index_path, image_root=image_root)
    uvicorn.run(app, host=host, port=port, workers=workers, log_level="warning")

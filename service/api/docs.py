"""The API's documentation page, `/docs` (Swagger UI), with everything it loads served from this
service's own origin, so that it works offline.

Its script, stylesheet and icon are the ones the fastapi-offline package ships
(https://pypi.org/project/fastapi-offline/, Swagger UI 5 from its npm release), served from
`/docs/assets/`; FastAPI's page builder writes the HTML
(https://fastapi.tiangolo.com/how-to/custom-docs-ui-assets/). FastAPI's other page, ReDoc, is
not served: ReDoc 2 always loads its maker's logo from cdn.redoc.ly, whatever its options.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.api.problems import Problem

ASSETS_PATH: Final = "/docs/assets"
ASSET_TYPES: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
"""Each asset the page loads, by file name, and its media type (RFC 9239 for JavaScript)."""

_ASSETS_DIR = Path(str(files("fastapi_offline").joinpath("static")))

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """The OpenAPI document in Swagger UI."""
    # The path prefix the app is served under (uvicorn's `--root-path`; empty by default).
    base = str(request.scope.get("root_path", ""))
    return get_swagger_ui_html(
        openapi_url=f"{base}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{base}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{base}{ASSETS_PATH}/favicon.png",
    )


@router.get(f"{ASSETS_PATH}/{{name}}", response_class=FileResponse)
async def asset(name: str) -> FileResponse:
    """One of `ASSET_TYPES`; 404 for any other name."""
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise Problem(404, "no such resource")
    return FileResponse(_ASSETS_DIR / name, media_type=media_type)

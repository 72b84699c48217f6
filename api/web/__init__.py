"""The web pages: planner, operator and inspector, served by the service itself.

Everything a page needs (MapLibre GL, the PMTiles reader, scripts, styles) lies under ``static/``; nothing is
fetched from the internet, so the pages work on offline municipal networks. The front-end libraries are
vendored from npm by ``scripts/vendor-web.sh`` at the versions pinned in ``package.json``. The pages speak
Simplified Chinese by default and English on a toggle; they call the JSON API under ``/api/v1`` with the
bearer token of the logged-in user.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

#: page path → its HTML file under ``static/``
PAGES: dict[str, str] = {
    "/": "index.html",
    "/planner": "planner.html",
    "/operator": "operator.html",
    "/inspector": "inspector.html",
}

router = APIRouter(include_in_schema=False)


def _page(file_name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / file_name, media_type="text/html; charset=utf-8")


def _add_page(path: str, file_name: str) -> None:
    def page() -> FileResponse:
        return _page(file_name)

    page.__name__ = f"page_{file_name.removesuffix('.html')}"
    router.add_api_route(path, page, methods=["GET"], response_class=FileResponse)


for _path, _file in PAGES.items():
    _add_page(_path, _file)


@router.get("/favicon.ico")
def favicon() -> RedirectResponse:
    """Browsers ask for it; the icon is an SVG under ``static/``."""
    return RedirectResponse("/static/app/favicon.svg")


def mount(app: FastAPI) -> None:
    """Add the pages and ``/static`` to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

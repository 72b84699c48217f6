"""Export a grid plan for outside use: GeoJSON, Shapefile, household roster, offline web map, print maps.

Every writer is atomic: files are written under a temporary name (or into a temporary folder) next to the
target and moved into place only once complete, so a failed export never leaves a half-written file.

* :func:`export_geojson` writes RFC 7946 GeoJSON (always WGS 84 longitude/latitude).
* :func:`export_shapefile` keeps the plan's CRS, writes UTF-8 DBFs with a ``.cpg`` so Chinese text survives,
  and shortens column names to the 10 characters DBF allows, as listed in :data:`SHAPEFILE_FIELDS`.
* :func:`export_roster` writes the household roster CSV (``utf-8-sig``, so Excel reads the Chinese right).
* :func:`export_html_map` writes one self-contained HTML file with Leaflet inlined from
  ``gis/static/leaflet``: it loads nothing from the network, for offline municipal networks.
* :func:`export_print_maps` draws one A4 portrait page per grid for the community notice board.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Figure as HtmlFigure
from branca.element import MacroElement
from folium.template import Template
from matplotlib import font_manager, patches, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from gis.crs import local_metric_crs
from gis.errors import GisError, PlanError
from gis.model import District, GridPlan

#: Plan layers written by the multi-file exports, in order.
LAYERS = ("grids", "microgrids", "building_units")

#: DBF field names for plan columns longer than the 10 characters a Shapefile allows.
#: Any other column over 10 characters is cut to 10 (made unique with a numeric suffix).
SHAPEFILE_FIELDS: dict[str, str] = {
    "microgrid_code": "mgrid_code",
    "community_code": "comm_code",
    "building_id": "bldg_id",
    "households_estimated": "hh_est",
}

#: Columns of the household roster CSV; ``community_name`` is added when a district is given.
ROSTER_COLUMNS = (
    "building_id",
    "unit",
    "floor_from",
    "floor_to",
    "households",
    "grid_code",
    "microgrid_code",
    "community_code",
)

#: Folder of the vendored Leaflet 1.9.4 (BSD-2-Clause, see its LICENSE there).
LEAFLET_DIR = Path(__file__).parent / "static" / "leaflet"

#: Qualitative fill colours of grids on the web map (Tableau 10 without its red and grey).
GRID_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f")
#: Outline colour of grids whose status is not ``ok``.
ALERT_COLOUR = "#d62728"

#: Font families tried, in order, for Chinese text on print maps.
CJK_FONT_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
    "AR PL UKai CN",
    "Noto Serif CJK SC",
)
# Lower-case file-name fragments (without - and _) of CJK font files, registered when not yet known.
_CJK_FILE_HINTS = ("notosanscjk", "notoserifcjk", "notosanssc", "sourcehan", "wqy", "simhei", "msyh", "uming")

_A4_INCHES = (210 / 25.4, 297 / 25.4)
_PNG_DPI = 300
_MAP_BOX = (0.06, 0.2, 0.88, 0.72)  # left, bottom, width, height of the map on the page (figure fraction)
_REMOTE_ASSET = re.compile(
    r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE
)


class CjkFontWarning(UserWarning):
    """No font with Chinese glyphs was found; print maps fall back to English-only labels."""


# ----------------------------------------------------------------------------------------------------------
# Atomic writing


@contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _staging_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary folder inside ``out_dir``, removed afterwards with whatever is left in it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out_dir, prefix=".skygrid-export-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out_dir: Path) -> None:
    """Move every file of ``stage`` (all complete) into ``out_dir``, replacing files of the same name."""
    for file in sorted(stage.iterdir()):
        os.replace(file, out_dir / file.name)


# ----------------------------------------------------------------------------------------------------------
# GeoJSON, Shapefile, roster


def export_geojson(plan: GridPlan, out_dir: Path) -> list[Path]:
    """Write the plan as RFC 7946 GeoJSON files, one per layer, in WGS 84 longitude/latitude.

    Args:
        plan: the grid plan, in any CRS.
        out_dir: folder to write into (created when missing); files of the same name are replaced.

    Returns:
        The paths of ``grids.geojson``, ``microgrids.geojson`` and ``building_units.geojson``.

    Raises:
        PlanError: the plan has no CRS.
    """
    with _staging_dir(out_dir) as stage:
        for layer in LAYERS:
            frame = _to_wgs84(getattr(plan, layer))
            frame.to_file(
                stage / f"{layer}.geojson",
                driver="GeoJSON",
                engine="pyogrio",
                layer_options={"RFC7946": "YES", "WRITE_NAME": "NO"},
            )
        _publish(stage, out_dir)
    return [out_dir / f"{layer}.geojson" for layer in LAYERS]


def export_shapefile(plan: GridPlan, out_dir: Path) -> list[Path]:
    """Write the plan as ESRI Shapefiles, one per layer, in the plan's own CRS.

    DBF text is UTF-8 and each layer gets a ``.cpg`` saying so, which QGIS and ArcGIS honour. Column names
    are shortened as listed in :data:`SHAPEFILE_FIELDS` (e.g. ``microgrid_code`` → ``mgrid_code``).

    Args:
        plan: the grid plan.
        out_dir: folder to write into (created when missing); files of the same name are replaced.

    Returns:
        The paths of ``grids.shp``, ``microgrids.shp`` and ``building_units.shp``; their ``.shx``, ``.dbf``,
        ``.prj`` and ``.cpg`` lie next to them.
    """
    with _staging_dir(out_dir) as stage:
        for layer in LAYERS:
            frame = getattr(plan, layer)
            target = stage / f"{layer}.shp"
            frame.rename(columns=_dbf_names(list(frame.columns))).to_file(
                target, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8", **_geometry_hint(frame)
            )
            target.with_suffix(".cpg").write_text("UTF-8", encoding="ascii")
        _publish(stage, out_dir)
    return [out_dir / f"{layer}.shp" for layer in LAYERS]


def _dbf_names(columns: list[str]) -> dict[str, str]:
    """Map column names to unique DBF field names of at most 10 characters."""
    mapping: dict[str, str] = {}
    taken = {c for c in columns if len(c) <= 10 and c not in SHAPEFILE_FIELDS}
    for column in columns:
        if column == "geometry" or column in taken:
            continue
        name = SHAPEFILE_FIELDS.get(column, column[:10])
        suffix = 1
        while name in taken:
            tail = str(suffix)
            name, suffix = column[: 10 - len(tail)] + tail, suffix + 1
        taken.add(name)
        mapping[column] = name
    return mapping


def _geometry_hint(frame: gpd.GeoDataFrame) -> dict[str, str]:
    """Name a geometry type for an empty layer, which GDAL cannot infer from its rows."""
    return {"geometry_type": "Polygon"} if frame.empty else {}


def export_roster(plan: GridPlan, path: Path, district: District | None = None) -> Path:
    """Write the household roster: one row per building unit with its grid, micro-grid and community.

    The CSV is encoded ``utf-8-sig`` (UTF-8 with a byte-order mark) so Excel shows Chinese text correctly.
    Rows are sorted by community, grid, micro-grid, building and unit.

    Args:
        plan: the grid plan.
        path: the CSV file to write.
        district: when given, a ``community_name`` column is added from its communities.

    Returns:
        ``path``.
    """
    units = pd.DataFrame(plan.building_units.drop(columns="geometry"))
    community = dict(zip(plan.grids["grid_code"], plan.grids["community_code"], strict=True))
    units["community_code"] = units["grid_code"].map(community)
    roster = units.loc[:, list(ROSTER_COLUMNS)]
    if district is not None:
        roster["community_name"] = roster["community_code"].map(_community_names(district))
    keys = ["community_code", "grid_code", "microgrid_code", "building_id", "unit"]
    roster = roster.sort_values(keys, kind="stable")
    with _atomic_file(path) as tmp:
        roster.to_csv(tmp, index=False, encoding="utf-8-sig")
    return path


def _community_names(district: District) -> dict[str, str]:
    communities = district.communities
    return {
        str(code): str(name)
        for code, name in zip(communities["community_code"], communities["name"], strict=True)
    }


def _to_wgs84(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if frame.crs is None:
        raise PlanError("plan: layers have no CRS, cannot convert to WGS 84")
    return frame.to_crs(4326)


# ----------------------------------------------------------------------------------------------------------
# Offline HTML map


def export_html_map(
    plan: GridPlan, path: Path, district: District | None = None, *, title: str = "SkyGrid 网格划分"
) -> Path:
    """Write an interactive map of the plan as one self-contained, offline HTML file.

    Leaflet is inlined from the vendored copy in ``gis/static/leaflet``; the page has no basemap and loads
    nothing from the network. Grids are filled one colour each (neighbours differ), grids whose status is
    not ``ok`` get a red outline, micro-grids are dashed outlines in their own layer; tooltips show codes,
    households and status. With ``district`` its buildings and community outlines are drawn too.

    Args:
        plan: the grid plan, in any CRS.
        path: the HTML file to write.
        district: optional district for the buildings and community outlines.
        title: page title and heading of the legend.

    Returns:
        ``path``.

    Raises:
        PlanError: the plan has no CRS.
        GisError: the rendered page would load an asset from the network (a folium change).
    """
    grids = _to_wgs84(plan.grids)
    fmap = folium.Map(location=None, tiles=None, prefer_canvas=True, attribution_control=False)
    fmap.default_js, fmap.default_css = [], []
    if district is not None:
        _add_district_layers(fmap, district)
    _add_grid_layer(fmap, grids)
    _add_micro_layer(fmap, _to_wgs84(plan.microgrids))
    folium.LayerControl(collapsed=False).add_to(fmap)
    _add_metric_scale(fmap)
    if not grids.empty:
        x0, y0, x1, y1 = (float(v) for v in grids.total_bounds)
        fmap.fit_bounds([[y0, x0], [y1, x1]])
    figure = cast(HtmlFigure, fmap.get_root())
    figure.title = title
    _inline_leaflet(figure)
    figure.html.add_child(folium.Element(_legend_html(plan, title, district is not None)))
    page = figure.render()
    if _REMOTE_ASSET.search(page):
        raise GisError(
            "the HTML map would load a script or stylesheet from the network; check folium's assets"
        )
    with _atomic_file(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _feature_collection(frame: gpd.GeoDataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """Return the frame as a GeoJSON dict with only ``columns`` and coordinates rounded to 6 decimals."""
    rounded = shapely.transform(frame.geometry.to_numpy(), lambda xy: np.round(xy, 6))
    slim = gpd.GeoDataFrame(frame.loc[:, list(columns)], geometry=rounded, crs=frame.crs)
    data: dict[str, Any] = json.loads(slim.to_json(drop_id=True))
    return data


def _add_layer(fmap: folium.Map, frame: gpd.GeoDataFrame, columns: Sequence[str], **options: Any) -> None:
    """Add ``frame`` (WGS 84) as a GeoJson layer, unless it is empty: folium cannot style an empty layer."""
    if not frame.empty:
        folium.GeoJson(_feature_collection(frame, columns), **options).add_to(fmap)


def _add_district_layers(fmap: folium.Map, district: District) -> None:
    """Add buildings and, under the grids, a wide community outline that shows as a halo around them."""
    building_style = {"color": "#9a9a9a", "weight": 0.5, "fillColor": "#d9d9d9", "fillOpacity": 0.8}
    community_style = {"color": "#555555", "weight": 7, "opacity": 0.6, "fill": False}
    for frame, name, style in (
        (district.buildings, "建筑 Buildings", building_style),
        (district.communities, "社区 Communities", community_style),
    ):
        _add_layer(
            fmap, _to_wgs84(frame), [], name=name, style_function=lambda _, s=style: s, interactive=False
        )


def _add_metric_scale(fmap: folium.Map) -> None:
    """Add Leaflet's scale control in metres only (folium's ``control_scale`` adds feet too)."""
    scale = MacroElement()  # type: ignore[no-untyped-call]  # branca leaves __init__ unannotated
    scale._template = Template(
        "{% macro script(this, kwargs) %}"
        "L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});"
        "{% endmacro %}"
    )
    fmap.add_child(scale)


def _add_grid_layer(fmap: folium.Map, grids: gpd.GeoDataFrame) -> None:
    _add_layer(
        fmap,
        grids.assign(_fill=grids["grid_code"].astype(str).map(grid_colours(grids))),
        ["grid_code", "community_code", "households", "status", "_fill"],
        name="网格 Grids",
        style_function=_grid_style,
        highlight_function=lambda _: {"weight": 4, "fillOpacity": 0.6},
        tooltip=folium.GeoJsonTooltip(
            fields=["grid_code", "households", "status"], aliases=["网格", "户数", "状态"], localize=True
        ),
    )


def _grid_style(feature: dict[str, Any]) -> dict[str, Any]:
    properties = feature["properties"]
    alert = properties["status"] != "ok"
    return {
        "fillColor": properties["_fill"],
        "fillOpacity": 0.4,
        "color": ALERT_COLOUR if alert else "#333333",
        "weight": 3 if alert else 1.5,
    }


def _add_micro_layer(fmap: folium.Map, micro: gpd.GeoDataFrame) -> None:
    _add_layer(
        fmap,
        micro,
        ["microgrid_code", "grid_code", "households", "status"],
        name="微网格 Micro-grids",
        style_function=lambda _: {"color": "#222222", "weight": 1, "dashArray": "4 4", "fillOpacity": 0},
        tooltip=folium.GeoJsonTooltip(
            fields=["microgrid_code", "grid_code", "households", "status"],
            aliases=["微网格", "网格", "户数", "状态"],
            localize=True,
        ),
    )


def grid_colours(grids: gpd.GeoDataFrame, palette: Sequence[str] = GRID_PALETTE) -> dict[str, str]:
    """Colour grids so that touching grids differ where the palette allows (greedy, largest degree first).

    Args:
        grids: the grids layer (any CRS).
        palette: the colours to choose from.

    Returns:
        A colour for every ``grid_code``.
    """
    codes = [str(c) for c in grids["grid_code"]]
    left, right = grids.sindex.query(grids.geometry, predicate="intersects")
    neighbours: dict[int, set[int]] = {i: set() for i in range(len(codes))}
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i != j:
            neighbours[i].add(j)
    chosen: dict[int, int] = {}
    for i in sorted(neighbours, key=lambda k: (-len(neighbours[k]), codes[k])):
        used = [chosen[j] for j in neighbours[i] if j in chosen]
        chosen[i] = min(range(len(palette)), key=lambda c: (used.count(c), c))
    return {codes[i]: palette[c] for i, c in chosen.items()}


def _inline_leaflet(figure: HtmlFigure) -> None:
    """Put Leaflet's CSS (with its images as data URIs) and JS into the page header."""
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")
    css = re.sub(r"url\(images/([\w.-]+\.png)\)", _png_data_uri, css)
    css += "\n.leaflet-container { background: #ffffff; }\n"
    js = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"^//# sourceMappingURL=.*$", "", js, flags=re.MULTILINE)
    figure.header.add_child(folium.Element(f"<style>\n{css}\n</style>"), name="leaflet_css")
    figure.header.add_child(folium.Element(f"<script>\n{js}\n</script>"), name="leaflet")


def _png_data_uri(match: re.Match[str]) -> str:
    data = (LEAFLET_DIR / "images" / match.group(1)).read_bytes()
    return f"url(data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def _legend_html(plan: GridPlan, title: str, with_district: bool) -> str:
    households = int(plan.grids["households"].sum())
    rows = [
        _legend_row(f"background:{GRID_PALETTE[0]};opacity:.6", "网格（每格一色）"),
        _legend_row(f"border:2px solid {ALERT_COLOUR}", "状态 ≠ ok（户数超出范围）"),
        _legend_row("border:1px dashed #222", "微网格"),
    ]
    if with_district:
        rows += [_legend_row("background:#d9d9d9", "建筑"), _legend_row("border:2px solid #444", "社区边界")]
    return (
        '<div style="position:fixed;bottom:30px;right:10px;z-index:1000;background:rgba(255,255,255,.92);'
        "padding:8px 12px;border:1px solid #888;border-radius:4px;font:13px/1.5 'Microsoft YaHei',"
        "'PingFang SC','Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif\">"
        f'<div style="font-size:15px;font-weight:bold">{html.escape(title)}</div>'
        f"<div>网格 {len(plan.grids)} 个 · 微网格 {len(plan.microgrids)} 个 · 户数 {households:,}</div>"
        f"{''.join(rows)}</div>"
    )


def _legend_row(swatch_style: str, label: str) -> str:
    return (
        '<div><span style="display:inline-block;width:16px;height:10px;margin-right:6px;'
        f'vertical-align:middle;box-sizing:border-box;{swatch_style}"></span>{label}</div>'
    )


# ----------------------------------------------------------------------------------------------------------
# Print maps


def export_print_maps(
    plan: GridPlan,
    out: Path,
    district: District | None = None,
    *,
    fmt: Literal["pdf", "png"] = "pdf",
    grid_codes: Sequence[str] | None = None,
) -> list[Path]:
    """Draw one printable A4 portrait page per grid, for the community notice board.

    Each page shows the grid outline in bold over the buildings (from ``district``), its micro-grids with
    codes and households, neighbouring grids faintly, a scale bar, a north arrow, the household and building
    totals and an empty box for the grid worker's name and phone number. Chinese labels need a CJK font (see
    :data:`CJK_FONT_FAMILIES`); without one the pages are labelled in English and a :class:`CjkFontWarning`
    is issued.

    Args:
        plan: the grid plan, in any CRS (drawn in a local metric CRS).
        out: folder to write into (created when missing).
        district: optional district, for buildings and community names.
        fmt: ``"pdf"`` writes one multi-page ``grids.pdf``; ``"png"`` writes ``<grid_code>.png`` per grid
            at 300 dpi.
        grid_codes: grids to draw, in this order; all grids in plan order when None.

    Returns:
        The written files.

    Raises:
        PlanError: a code of ``grid_codes`` is not in the plan, or there is no grid to draw.
    """
    codes = _selected_codes(plan, grid_codes)
    scene = _Scene.build(plan, district)
    text = _Text.for_font(_find_cjk_font())
    if text.font is None:
        warnings.warn(
            "no font with Chinese glyphs found (install e.g. fonts-noto-cjk or fonts-wqy-microhei); "
            "print maps use English-only labels",
            CjkFontWarning,
            stacklevel=2,
        )
    with rc_context(text.rc()):
        if fmt == "pdf":
            return [_write_pdf(scene, text, codes, out / "grids.pdf")]
        return _write_pngs(scene, text, codes, out)


def _selected_codes(plan: GridPlan, grid_codes: Sequence[str] | None) -> list[str]:
    known = [str(c) for c in plan.grids["grid_code"]]
    codes = known if grid_codes is None else [str(c) for c in grid_codes]
    unknown = sorted(set(codes) - set(known))
    if unknown:
        raise PlanError(f"plan: grid code(s) not in the plan: {', '.join(unknown)}")
    if not codes:
        raise PlanError("plan: no grid to draw")
    return codes


def _write_pdf(scene: _Scene, text: _Text, codes: list[str], path: Path) -> Path:
    with _atomic_file(path) as tmp, PdfPages(tmp, metadata={"Title": "SkyGrid grid maps"}) as pdf:
        for code in codes:
            pdf.savefig(_grid_page(scene, text, code))
    return path


def _write_pngs(scene: _Scene, text: _Text, codes: list[str], out: Path) -> list[Path]:
    with _staging_dir(out) as stage:
        names = [_png_name(code) for code in codes]
        for code, name in zip(codes, names, strict=True):
            _grid_page(scene, text, code).savefig(stage / name, format="png", dpi=_PNG_DPI)
        _publish(stage, out)
    return [out / name for name in names]


def _png_name(code: str) -> str:
    """File name of a grid's PNG: the code with characters unsafe in file names replaced by ``_``."""
    return re.sub(r"[^\w.-]", "_", code) + ".png"


@dataclass(frozen=True)
class _Text:
    """Labels of a print map, in Chinese and English when a CJK font is known, else English only."""

    font: str | None
    weight: str = "normal"

    @classmethod
    def for_font(cls, font: str | None) -> _Text:
        """Labels for ``font`` (None: English only), titles bold when the font has a bold face."""
        family = font or "DejaVu Sans"
        weights = [
            _weight(entry.weight) for entry in font_manager.fontManager.ttflist if entry.name == family
        ]
        return cls(font, "bold" if any(w >= 600 for w in weights) else "normal")

    def rc(self) -> dict[RcKeyType, Any]:
        """Matplotlib settings for this font (embedded as TrueType in PDFs)."""
        families = [self.font, "DejaVu Sans"] if self.font else ["DejaVu Sans"]
        return {"font.family": "sans-serif", "font.sans-serif": families, "pdf.fonttype": 42}

    def pick(self, chinese: str, english: str) -> str:
        """Return the Chinese label when it can be drawn, else the English one."""
        return chinese if self.font else english

    def safe(self, value: object) -> str:
        """Return ``value`` as text, or "" when it needs glyphs the font lacks."""
        value_text = "" if value is None or value is pd.NA else str(value)
        return value_text if self.font or value_text.isascii() else ""


@dataclass(frozen=True)
class _Scene:
    """Everything drawn on print maps, projected once to a local metric CRS."""

    grids: gpd.GeoDataFrame
    micro: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame | None
    community_names: dict[str, str]

    @classmethod
    def build(cls, plan: GridPlan, district: District | None) -> _Scene:
        """Project the plan (and the district's buildings) to the plan's local metric CRS."""
        if plan.grids.crs is None:
            raise PlanError("plan: layers have no CRS, cannot draw to scale")
        crs = local_metric_crs(plan.grids)
        buildings = None if district is None else district.buildings.to_crs(crs)
        names = {} if district is None else _community_names(district)
        return cls(
            plan.grids.to_crs(crs).set_index("grid_code", drop=False),
            plan.microgrids.to_crs(crs),
            buildings,
            names,
        )


def _grid_page(scene: _Scene, text: _Text, code: str) -> Figure:
    grid = scene.grids.loc[code]
    fig = Figure(figsize=_A4_INCHES)
    ax = fig.add_axes(_MAP_BOX)
    x0, y0, x1, y1 = _view(grid.geometry.bounds, _MAP_BOX[2] * _A4_INCHES[0] / (_MAP_BOX[3] * _A4_INCHES[1]))
    _draw_context(ax, scene, code, (x0, y0, x1, y1))
    _draw_grid(ax, scene, text, code)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    _draw_scale_bar(ax, (x0, y0, x1, y1))
    _draw_north_arrow(ax, text)
    _draw_page_text(fig, scene, text, grid)
    return fig


def _view(bounds: tuple[float, float, float, float], aspect: float) -> tuple[float, float, float, float]:
    """Pad the bounds by 8 % (at least 20 m) and widen one side to the map box's width/height ratio."""
    x0, y0, x1, y1 = bounds
    pad = max(0.08 * max(x1 - x0, y1 - y0), 20.0)
    width, height = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    width, height = max(width, height * aspect), max(height, width / aspect)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2


def _draw_context(ax: Axes, scene: _Scene, code: str, view: tuple[float, float, float, float]) -> None:
    """Draw the grid's faint fill, buildings in view and the neighbouring grids' outlines with codes."""
    x0, y0, x1, y1 = view
    scene.grids.loc[[code]].plot(ax=ax, color="#fff4cc", linewidth=0, zorder=0)
    if scene.buildings is not None:
        _plot(
            scene.buildings.cx[x0:x1, y0:y1],
            ax,
            color="#cfcfcf",
            edgecolor="#9a9a9a",
            linewidth=0.2,
            zorder=1,
        )
    others = scene.grids.cx[x0:x1, y0:y1]
    others = others[others["grid_code"] != code]
    _plot(others.boundary, ax, color="#9a9a9a", linewidth=0.8, linestyle="--", zorder=2)
    visible = others.geometry.intersection(shapely.box(x0, y0, x1, y1))
    for other_code, part in zip(others["grid_code"], visible, strict=True):
        if not part.is_empty:
            point = part.representative_point()
            ax.text(point.x, point.y, str(other_code), color="#8a8a8a", fontsize=7, ha="center", clip_on=True)


def _draw_grid(ax: Axes, scene: _Scene, text: _Text, code: str) -> None:
    """Draw the grid's micro-grids with code and households, then the grid outline in bold."""
    micro = scene.micro[scene.micro["grid_code"] == code]
    _plot(micro.boundary, ax, color="#1f5fa8", linewidth=0.9, zorder=3)
    unit = text.pick("户", " hh")
    for micro_code, households, point in zip(
        micro["microgrid_code"], micro["households"], micro.representative_point(), strict=True
    ):
        label = f"{text.safe(micro_code)}\n{int(households)}{unit}"
        bbox = {"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.75, "linewidth": 0}
        ax.text(
            point.x,
            point.y,
            label,
            fontsize=7,
            color="#1f3f78",
            ha="center",
            va="center",
            bbox=bbox,
            zorder=5,
        )
    scene.grids.loc[[code]].boundary.plot(ax=ax, color="black", linewidth=2.6, zorder=4)


def _plot(frame: gpd.GeoDataFrame | gpd.GeoSeries, ax: Axes, **style: Any) -> None:
    """Plot a frame unless it is empty (geopandas warns on empty frames)."""
    if not frame.empty:
        frame.plot(ax=ax, **style)


def _draw_scale_bar(ax: Axes, view: tuple[float, float, float, float]) -> None:
    """Draw a two-segment scale bar in metres at the lower left of the map."""
    x0, y0, x1, y1 = view
    length = _nice_length((x1 - x0) / 5)
    left, bottom, height = x0 + 0.04 * (x1 - x0), y0 + 0.035 * (y1 - y0), 0.008 * (y1 - y0)
    half = length / 2
    for start, colour in ((left, "black"), (left + half, "white")):
        bar = patches.Rectangle(
            (start, bottom), half, height, facecolor=colour, edgecolor="black", linewidth=0.8
        )
        ax.add_patch(bar).set_zorder(6)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    halo = {"boxstyle": "square,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0}
    ax.text(left, bottom + 2 * height, "0", fontsize=8, ha="center", va="bottom", bbox=halo, zorder=6)
    ax.text(
        left + length, bottom + 2 * height, label, fontsize=8, ha="center", va="bottom", bbox=halo, zorder=6
    )


def _nice_length(target: float) -> float:
    """Return the largest 1, 2 or 5 times a power of ten not above ``target`` (at least 1)."""
    if target < 1:
        return 1.0
    power = 10.0 ** math.floor(math.log10(target))
    return float(max(step * power for step in (1, 2, 5) if step * power <= target))


def _draw_north_arrow(ax: Axes, text: _Text) -> None:
    arrow = {"facecolor": "black", "edgecolor": "black", "width": 3, "headwidth": 11, "headlength": 12}
    ax.annotate(
        "", xy=(0.95, 0.95), xytext=(0.95, 0.86), xycoords="axes fraction", arrowprops=arrow, zorder=6
    )
    ax.text(
        0.95,
        0.955,
        "N",
        transform=ax.transAxes,
        fontsize=13,
        fontweight=text.weight,
        ha="center",
        va="bottom",
    )


def _draw_page_text(fig: Figure, scene: _Scene, text: _Text, grid: pd.Series[Any]) -> None:
    """Write the title, community, totals, the grid worker box and the footer."""
    code = str(grid["grid_code"])
    fig.text(0.06, 0.962, text.pick(f"网格 {code}", f"Grid {code}"), fontsize=20, fontweight=text.weight)
    fig.text(0.06, 0.937, _community_line(scene, text, str(grid["community_code"])), fontsize=12)
    micro_count = int((scene.micro["grid_code"] == code).sum())
    totals = [
        (text.pick("户数", "Households"), f"{int(grid['households'])}"),
        (text.pick("楼栋", "Buildings"), f"{int(grid['buildings'])}"),
        (text.pick("微网格", "Micro-grids"), f"{micro_count}"),
        (text.pick("状态", "Status"), text.safe(grid["status"])),
    ]
    fig.text(0.06, 0.165, "      ".join(f"{k}: {v}" for k, v in totals), fontsize=12)
    fig.add_artist(
        patches.Rectangle((0.06, 0.05), 0.88, 0.09, transform=fig.transFigure, fill=False, linewidth=1.2)
    )
    worker = text.pick(
        "网格员 / Grid worker: ________      电话 / Phone: ________",
        "Grid worker: ________      Phone: ________",
    )
    fig.text(0.08, 0.095, worker, fontsize=13, va="center")
    fig.text(0.06, 0.025, f"SkyGrid · {scene.grids.crs.name}", fontsize=7, color="#666666")


def _community_line(scene: _Scene, text: _Text, community_code: str) -> str:
    name = text.safe(scene.community_names.get(community_code, ""))
    label = f"{name} ({community_code})" if name else community_code
    return text.pick(f"社区 {label}", f"Community {label}")


def _weight(weight: int | str) -> int:
    """Numeric weight of a font entry (matplotlib stores some as names, e.g. "bold")."""
    return weight if isinstance(weight, int) else int(font_manager.weight_dict.get(weight, 400))


def _find_cjk_font() -> str | None:
    """Return the family name of an installed font with Chinese glyphs, or None when there is none."""
    return _cached_cjk_font()


@functools.cache
def _cached_cjk_font() -> str | None:
    family = _known_cjk_family()
    if family is None:
        _register_cjk_files(font_manager.findSystemFonts())
        family = _known_cjk_family()
    return family


def _known_cjk_family() -> str | None:
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONT_FAMILIES if name in known), None)


def _register_cjk_files(
    paths: Sequence[str], add: Callable[[str], None] = font_manager.fontManager.addfont
) -> None:
    """Register CJK font files that matplotlib's cached font list does not know yet (installed after it)."""
    for path in paths:
        stem = re.sub(r"[-_ ]", "", Path(path).name.lower())
        if any(hint in stem for hint in _CJK_FILE_HINTS):
            try:
                add(path)
            except (OSError, RuntimeError, ValueError):
                continue

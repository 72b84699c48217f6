"""Previews of a mission for any GIS (GeoJSON, RFC 7946) or Google Earth (KML): paths, waypoints, fences."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from drone.formats import atomic_write
from drone.model import GeoFencePolygon, Mission, WaypointAction

KML_NS = "http://www.opengis.net/kml/2.2"


def write_geojson(mission: Mission, path: Path) -> list[Path]:
    """Write every sortie's path, its photo waypoints and the fence as one GeoJSON FeatureCollection."""
    atomic_write({Path(path): json.dumps(geojson(mission), ensure_ascii=False, indent=1).encode("utf-8")})
    return [Path(path)]


def geojson(mission: Mission) -> dict[str, Any]:
    """The mission as a GeoJSON FeatureCollection (longitude, latitude, altitude above take-off)."""
    features: list[dict[str, Any]] = []
    for sortie in mission.sorties:
        line = [[sortie.home.lon_deg, sortie.home.lat_deg, 0.0]]
        line += [[w.lon_deg, w.lat_deg, w.altitude_m] for w in sortie.waypoints]
        line.append(line[0])
        features.append(
            _feature(
                {"type": "LineString", "coordinates": line},
                kind="sortie",
                sortie=sortie.index + 1,
                duration_s=round(sortie.estimated_duration_s, 1),
                distance_m=round(sortie.distance_m, 1),
                trigger_distance_m=round(sortie.trigger_distance_m, 2),
            )
        )
        features += [
            _feature(
                {"type": "Point", "coordinates": [w.lon_deg, w.lat_deg, w.altitude_m]},
                kind="waypoint",
                sortie=sortie.index + 1,
                action=w.action.value,
            )
            for w in sortie.waypoints
            if w.action is not WaypointAction.NONE
        ]
    features += [_fence_feature(polygon) for polygon in mission.fence]
    return {"type": "FeatureCollection", "name": mission.name, "features": features}


def _feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def _fence_feature(polygon: GeoFencePolygon) -> dict[str, Any]:
    ring = [[lon, lat] for lon, lat in polygon.vertices]
    ring.append(ring[0])
    kind = "fence_inclusion" if polygon.inclusion else "fence_exclusion"
    return _feature({"type": "Polygon", "coordinates": [ring]}, kind=kind)


def write_kml(mission: Mission, path: Path) -> list[Path]:
    """Write the sorties (3-D paths relative to ground) and fences as KML for Google Earth."""
    atomic_write({Path(path): kml_bytes(mission)})
    return [Path(path)]


def kml_bytes(mission: Mission) -> bytes:
    """The mission as a KML document."""
    ET.register_namespace("", KML_NS)
    root = ET.Element(_k("kml"))
    document = ET.SubElement(root, _k("Document"))
    ET.SubElement(document, _k("name")).text = mission.name
    for sortie in mission.sorties:
        coords = [(sortie.home.lon_deg, sortie.home.lat_deg, 0.0)]
        coords += [(w.lon_deg, w.lat_deg, w.altitude_m) for w in sortie.waypoints]
        coords.append(coords[0])
        placemark = _placemark(document, f"Sortie {sortie.index + 1} / 架次 {sortie.index + 1}")
        line = ET.SubElement(placemark, _k("LineString"))
        ET.SubElement(line, _k("altitudeMode")).text = "relativeToGround"
        ET.SubElement(line, _k("coordinates")).text = " ".join(
            f"{x:.8f},{y:.8f},{z:.1f}" for x, y, z in coords
        )
    for polygon in mission.fence:
        name = "Fence (inclusion) / 电子围栏" if polygon.inclusion else "No-fly zone / 禁飞区"
        ring = [*polygon.vertices, polygon.vertices[0]]
        shape = ET.SubElement(_placemark(document, name), _k("Polygon"))
        boundary = ET.SubElement(ET.SubElement(shape, _k("outerBoundaryIs")), _k("LinearRing"))
        ET.SubElement(boundary, _k("coordinates")).text = " ".join(f"{x:.8f},{y:.8f}" for x, y in ring)
    ET.indent(root, space="  ")
    return bytes(ET.tostring(root, encoding="UTF-8", xml_declaration=True))


def _placemark(document: ET.Element, name: str) -> ET.Element:
    placemark = ET.SubElement(document, _k("Placemark"))
    ET.SubElement(placemark, _k("name")).text = name
    return placemark


def _k(tag: str) -> str:
    return f"{{{KML_NS}}}{tag}"

"""DJI WPML route files (``.kmz``) for DJI Pilot 2 and FlightHub 2: DJI drones do not speak MAVLink.

A ``.kmz`` is a zip holding ``wpmz/template.kml`` (the route as planned) and ``wpmz/waylines.wpml`` (the
route as executed), both KML with the ``wpml`` namespace, laid out as DJI Pilot 2 exports them (checked
against such an export in the tests). Heights are relative to the take-off point; the drone takes off,
flies to the first waypoint, takes photos every trigger distance along survey legs (a ``multipleDistance``
action group), turns the gimbal, hovers and shoots at inspection points (``reachPoint`` action groups),
and goes home at the end. Spec: https://developer.dji.com/doc/cloud-api-tutorial/en/api-reference/dji-wpml/
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from drone.cameras import PRESETS
from drone.formats import MissionFileError, atomic_write, sortie_paths
from drone.model import Mission, Sortie, Waypoint, WaypointAction

KML_NS = "http://www.opengis.net/kml/2.2"
WPML_NS = "http://www.dji.com/wpmz/1.0.6"
_TURN_MODE = "toPointAndStopWithDiscontinuityCurvature"
_TAKEOFF_SECURITY_HEIGHT_M = 20
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def write_kmz(mission: Mission, path: Path) -> list[Path]:
    """Write one DJI ``.kmz`` per sortie; returns the paths written.

    Raises:
        MissionFileError: the mission's camera is not a DJI preset (WPML names the drone and payload).
    """
    paths = sortie_paths(Path(path), len(mission.sorties))
    drone, payload = _dji_enums(mission, path)
    files = {
        target: kmz_bytes(mission, sortie, drone, payload)
        for target, sortie in zip(paths, mission.sorties, strict=True)
    }
    atomic_write(files)
    return paths


def _dji_enums(mission: Mission, path: Path) -> tuple[tuple[int, int], int]:
    for preset in PRESETS.values():
        if (
            preset.camera == mission.camera
            and preset.dji_drone is not None
            and preset.dji_payload is not None
        ):
            return preset.dji_drone, preset.dji_payload
    dji = sorted(k for k, p in PRESETS.items() if p.dji_drone is not None)
    raise MissionFileError(
        f"{path}: camera {mission.camera.name!r} is not a DJI camera; DJI WPML needs one of {', '.join(dji)}"
    )


def kmz_bytes(mission: Mission, sortie: Sortie, drone: tuple[int, int], payload: int) -> bytes:
    """The zipped ``wpmz/template.kml`` and ``wpmz/waylines.wpml`` of one sortie."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, root in (
            ("wpmz/template.kml", _template(mission, sortie, drone, payload)),
            ("wpmz/waylines.wpml", _waylines(mission, sortie, drone, payload)),
        ):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _xml(root))
    return buffer.getvalue()


def _xml(root: ET.Element) -> bytes:
    ET.register_namespace("", KML_NS)
    ET.register_namespace("wpml", WPML_NS)
    ET.indent(root, space="  ")
    return bytes(ET.tostring(root, encoding="UTF-8", xml_declaration=True))


def _k(tag: str) -> str:
    return f"{{{KML_NS}}}{tag}"


def _w(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{WPML_NS}}}{tag}")
    if text is not None:
        element.text = _text(text)
    return element


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def _mission_config(document: ET.Element, mission: Mission, drone: tuple[int, int], payload: int) -> None:
    config = _w(document, "missionConfig")
    _w(config, "flyToWaylineMode", "safely")
    _w(config, "finishAction", "goHome")
    _w(config, "exitOnRCLost", "executeLostAction")
    _w(config, "executeRCLostAction", "goBack")
    _w(config, "takeOffSecurityHeight", _TAKEOFF_SECURITY_HEIGHT_M)
    _w(config, "globalTransitionalSpeed", _speed(mission))
    info = _w(config, "droneInfo")
    _w(info, "droneEnumValue", drone[0])
    _w(info, "droneSubEnumValue", drone[1])
    payload_info = _w(config, "payloadInfo")
    _w(payload_info, "payloadEnumValue", payload)
    _w(payload_info, "payloadSubEnumValue", 0)
    _w(payload_info, "payloadPositionIndex", 0)


def _speed(mission: Mission) -> float:
    return mission.sorties[0].cruise_speed_m_s if mission.sorties else 10.0


def _template(mission: Mission, sortie: Sortie, drone: tuple[int, int], payload: int) -> ET.Element:
    root = ET.Element(_k("kml"))
    document = ET.SubElement(root, _k("Document"))
    _w(document, "author", "SkyGrid")
    _mission_config(document, mission, drone, payload)
    folder = ET.SubElement(document, _k("Folder"))
    _w(folder, "templateType", "waypoint")
    _w(folder, "templateId", 0)
    system = _w(folder, "waylineCoordinateSysParam")
    _w(system, "coordinateMode", "WGS84")
    _w(system, "heightMode", "relativeToStartPoint")
    _w(system, "positioningType", "GPS")
    _w(folder, "autoFlightSpeed", sortie.cruise_speed_m_s)
    _w(folder, "globalHeight", mission.altitude_m)
    _w(folder, "caliFlightEnable", 0)
    _w(folder, "gimbalPitchMode", "usePointSetting")
    _heading(_w(folder, "globalWaypointHeadingParam"))
    _w(folder, "globalWaypointTurnMode", _TURN_MODE)
    _w(folder, "globalUseStraightLine", 1)
    for index, waypoint in enumerate(sortie.waypoints):
        placemark = _placemark(folder, index, waypoint)
        _w(placemark, "ellipsoidHeight", waypoint.altitude_m)
        _w(placemark, "height", waypoint.altitude_m)
        for tag in ("useGlobalHeight", "useGlobalSpeed", "useGlobalHeadingParam", "useGlobalTurnParam"):
            _w(placemark, tag, 1)
        _w(placemark, "useStraightLine", 1)
        _w(placemark, "gimbalPitchAngle", waypoint.gimbal_pitch_deg)
        _w(placemark, "isRisky", 0)
        _actions(placemark, index, sortie)
    _payload_param(folder)
    return root


def _waylines(mission: Mission, sortie: Sortie, drone: tuple[int, int], payload: int) -> ET.Element:
    root = ET.Element(_k("kml"))
    document = ET.SubElement(root, _k("Document"))
    _mission_config(document, mission, drone, payload)
    folder = ET.SubElement(document, _k("Folder"))
    _w(folder, "templateId", 0)
    _w(folder, "executeHeightMode", "relativeToStartPoint")
    _w(folder, "waylineId", 0)
    _w(folder, "distance", round(sortie.distance_m, 3))
    _w(folder, "duration", round(sortie.estimated_duration_s, 3))
    _w(folder, "autoFlightSpeed", sortie.cruise_speed_m_s)
    for index, waypoint in enumerate(sortie.waypoints):
        placemark = _placemark(folder, index, waypoint)
        _w(placemark, "executeHeight", waypoint.altitude_m)
        _w(placemark, "waypointSpeed", waypoint.speed_m_s or sortie.cruise_speed_m_s)
        _heading(_w(placemark, "waypointHeadingParam"))
        turn = _w(placemark, "waypointTurnParam")
        _w(turn, "waypointTurnMode", _TURN_MODE)
        _w(turn, "waypointTurnDampingDist", 0)
        _w(placemark, "useStraightLine", 1)
        _actions(placemark, index, sortie)
        gimbal = _w(placemark, "waypointGimbalHeadingParam")
        _w(gimbal, "waypointGimbalPitchAngle", waypoint.gimbal_pitch_deg)
        _w(gimbal, "waypointGimbalYawAngle", 0)
        _w(placemark, "isRisky", 0)
        _w(placemark, "waypointWorkType", 0)
    return root


def _placemark(folder: ET.Element, index: int, waypoint: Waypoint) -> ET.Element:
    placemark = ET.SubElement(folder, _k("Placemark"))
    point = ET.SubElement(placemark, _k("Point"))
    ET.SubElement(point, _k("coordinates")).text = f"{waypoint.lon_deg:.12f},{waypoint.lat_deg:.12f}"
    _w(placemark, "index", index)
    return placemark


def _heading(parent: ET.Element) -> None:
    _w(parent, "waypointHeadingMode", "followWayline")
    _w(parent, "waypointHeadingAngle", 0)
    _w(parent, "waypointPoiPoint", "0.000000,0.000000,0.000000")
    _w(parent, "waypointHeadingAngleEnable", 0)
    _w(parent, "waypointHeadingPoiIndex", 0)


def _payload_param(folder: ET.Element) -> None:
    param = _w(folder, "payloadParam")
    _w(param, "payloadPositionIndex", 0)
    _w(param, "imageFormat", "wide")


def _actions(placemark: ET.Element, index: int, sortie: Sortie) -> None:
    waypoint = sortie.waypoints[index]
    if waypoint.action is WaypointAction.START_SURVEY:
        end = _survey_end(sortie, index)
        group = _group(placemark, index, index, end, "multipleDistance", sortie.trigger_distance_m)
        _take_photo(group, 0)
    elif waypoint.action in (WaypointAction.PHOTO, WaypointAction.HOVER_PHOTO):
        group = _group(placemark, index, index, index, "reachPoint", None)
        _gimbal(group, 0, waypoint.gimbal_pitch_deg)
        action_id = 1
        if waypoint.action is WaypointAction.HOVER_PHOTO and waypoint.hover_s > 0:
            hover = _action(group, action_id, "hover")
            _w(hover, "hoverTime", waypoint.hover_s)
            action_id += 1
        _take_photo(group, action_id)


def _survey_end(sortie: Sortie, start: int) -> int:
    for j in range(start + 1, len(sortie.waypoints)):
        if sortie.waypoints[j].action is WaypointAction.STOP_SURVEY:
            return j
    return len(sortie.waypoints) - 1


def _group(
    placemark: ET.Element, group_id: int, start: int, end: int, trigger: str, param: float | None
) -> ET.Element:
    group = _w(placemark, "actionGroup")
    _w(group, "actionGroupId", group_id)
    _w(group, "actionGroupStartIndex", start)
    _w(group, "actionGroupEndIndex", end)
    _w(group, "actionGroupMode", "sequence")
    trigger_element = _w(group, "actionTrigger")
    _w(trigger_element, "actionTriggerType", trigger)
    if param is not None:
        _w(trigger_element, "actionTriggerParam", round(param, 3))
    return group


def _action(group: ET.Element, action_id: int, func: str) -> ET.Element:
    action = _w(group, "action")
    _w(action, "actionId", action_id)
    _w(action, "actionActuatorFunc", func)
    return _w(action, "actionActuatorFuncParam")


def _take_photo(group: ET.Element, action_id: int) -> None:
    param = _action(group, action_id, "takePhoto")
    _w(param, "payloadPositionIndex", 0)
    _w(param, "useGlobalPayloadLensIndex", 1)


def _gimbal(group: ET.Element, action_id: int, pitch_deg: float) -> None:
    param = _action(group, action_id, "gimbalRotate")
    _w(param, "gimbalHeadingYawBase", "north")
    _w(param, "gimbalRotateMode", "absoluteAngle")
    _w(param, "gimbalPitchRotateEnable", 1)
    _w(param, "gimbalPitchRotateAngle", pitch_deg)
    for axis in ("Roll", "Yaw"):
        _w(param, f"gimbal{axis}RotateEnable", 0)
        _w(param, f"gimbal{axis}RotateAngle", 0)
    _w(param, "gimbalRotateTimeEnable", 0)
    _w(param, "gimbalRotateTime", 0)
    _w(param, "payloadPositionIndex", 0)

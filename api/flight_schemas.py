"""Request and response bodies of the mission preview, vehicle upload and flight endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SourceKind = Literal["simulator", "video_srt", "photos", "stream"]


class CameraPublic(BaseModel):
    """A camera preset an operator can plan with."""

    id: str
    name: str
    sensor_width_mm: float
    sensor_height_mm: float
    focal_length_mm: float
    image_width_px: int
    image_height_px: int


class MissionPreview(BaseModel):
    """GeoJSON FeatureCollection of the paths, photo points, take-off and no-fly zones, with a summary."""

    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]]
    summary: dict[str, Any]


class UploadRequest(BaseModel):
    connection: str = Field(
        min_length=3,
        max_length=200,
        description="sim (the simulator vehicle on loopback), udp:HOST:PORT, tcp:HOST:PORT or serial:DEVICE:BAUD",
    )
    sortie: int = Field(default=0, ge=0, le=999, description="which sortie goes onto the vehicle (0 = first)")


class JobRef(BaseModel):
    """A started background job; poll ``/api/v1/jobs/{job_id}``."""

    job_id: int


class SourceIn(BaseModel):
    kind: SourceKind
    uri: str | None = Field(
        default=None, max_length=2000, description="video file, photo folder or stream URL"
    )
    srt: str | None = Field(
        default=None, max_length=2000, description="the video's DJI SRT (default: beside it)"
    )
    telemetry: str | None = Field(
        default=None,
        max_length=300,
        description="a stream's MAVLink link, e.g. udpin:0.0.0.0:14550, tcp:HOST:5760 or serial:/dev/ttyUSB0:57600",
    )


class FlightCreate(BaseModel):
    mission_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    source: SourceIn


class FlightPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    mission_id: int | None
    source_kind: str
    source_uri: str
    status: str
    created_at: datetime


class FlightTrack(BaseModel):
    """Where the flight's frames were taken, in order: a GeoJSON LineString feature (WGS-84) for the map."""

    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any]
    properties: dict[str, Any]


class PositionPublic(BaseModel):
    lon: float
    lat: float
    altitude_m: float | None
    t: datetime | None


class FlightDetail(FlightPublic):
    created_by: str
    frames: int
    flags: int
    last_position: PositionPublic | None
    latest_frame_url: str | None


class FlightFlag(BaseModel):
    """A flag found on a flight, as the live map shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    category: str
    score: float | None
    lon: float
    lat: float
    grid_code: str | None
    microgrid_code: str | None
    status: str
    sightings: int | None

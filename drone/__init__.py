"""SkyGrid's aerial grid worker: coverage missions over grids, mission files, the vehicle link and frame streams.

Core types live in :mod:`drone.model` (Camera, Mission, Sortie, Waypoint, MissionItem, Pose, Frame,
FrameSource). Planning (``cameras``, ``coverage``, ``altitude``, ``sorties``, ``inspection``, ``planner``,
``items``) works in a local metric CRS and returns WGS-84 missions; ``formats`` writes and reads QGroundControl
``.plan`` / ``.waypoints``, DJI WPML ``.kmz`` and GeoJSON/KML previews; ``link`` talks MAVLink (pymavlink) to a
vehicle and ``sim`` is a simulated ArduCopter behind a real MAVLink endpoint; ``srt``, ``sources`` and
``framedir`` turn videos, photos and streams into posed frames; ``geometry``, ``world``, ``simcam`` and
``simsource`` are the simulated camera over the demo district, with ground truth, and ``dataset`` makes YOLO
training data from it.
"""

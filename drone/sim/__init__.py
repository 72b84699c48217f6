"""Simulators for the aerial grid worker: a MAVLink multicopter (:mod:`drone.sim.vehicle`)."""

from drone.sim.vehicle import SimSettings, SimVehicle, TrackPoint

__all__ = ["SimSettings", "SimVehicle", "TrackPoint"]

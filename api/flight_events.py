"""Live events of running flights, fanned out to server-sent-event subscribers.

The flight job (a worker thread) publishes ``status``, ``position``, ``frame``, ``flag`` and ``done`` events to
the flight's :class:`FlightChannel`; each subscriber (an SSE response on the event loop) reads them from its own
:class:`Subscriber`. Publishing never blocks and never waits for a subscriber, so a slow client cannot slow the
pipeline: positions and frames are coalesced to the newest one per subscriber (older ones are dropped and
counted), while status, flag and done events are always delivered, in order. A subscriber that joins late first
gets the current status, the last position and frame, the flags found so far (each as last published), and
``done`` if the flight ended.

One :class:`FlightHub` belongs to one app (``app.state``); nothing here is module-level state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Event kinds of which a subscriber only ever needs the newest one.
COALESCED = ("position", "frame")


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name and JSON data."""

    kind: str
    data: dict[str, Any]

    def encode(self) -> str:
        """The event in the text/event-stream format."""
        return f"event: {self.kind}\ndata: {json.dumps(self.data, ensure_ascii=False)}\n\n"


class Subscriber:
    """One client's view of a channel: the newest position and frame, and every other event in order.

    ``push`` may be called from any thread; :meth:`next_events` runs on the subscriber's event loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wake = asyncio.Event()
        self._lock = threading.Lock()
        self._ordered: deque[Event] = deque()
        self._latest: dict[str, Event] = {}
        self.dropped = 0

    def push(self, event: Event) -> None:
        """Queue ``event`` (replacing an undelivered older position or frame) and wake the reader."""
        with self._lock:
            if event.kind in COALESCED:
                self.dropped += event.kind in self._latest
                self._latest[event.kind] = event
            else:
                self._ordered.append(event)
        with contextlib.suppress(RuntimeError):  # the subscriber's loop has closed: nobody is reading
            self._loop.call_soon_threadsafe(self._wake.set)

    async def next_events(self, timeout_s: float) -> list[Event]:
        """The events waiting now, after waiting up to ``timeout_s`` for one (empty on timeout): status first,
        then the newest position and frame, then flags and ``done`` in the order they came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        self._wake.clear()
        with self._lock:
            latest = [self._latest.pop(kind) for kind in COALESCED if kind in self._latest]
            ordered = list(self._ordered)
            self._ordered.clear()
        statuses = [event for event in ordered if event.kind == "status"]
        return statuses + latest + [event for event in ordered if event.kind != "status"]


@dataclass
class FlightChannel:
    """The events of one flight: what a late subscriber needs, and the current subscribers."""

    status: Event | None = None
    latest: dict[str, Event] = field(default_factory=dict)
    flags: dict[Any, Event] = field(default_factory=dict)  # flag id → its newest event
    done: Event | None = None
    subscribers: set[Subscriber] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set to stop the flight's run after the frame in hand (a live stream has no end of its own).
    stop: threading.Event = field(default_factory=threading.Event)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Remember ``kind``/``data`` for late subscribers and hand it to every current one."""
        event = Event(kind, data)
        with self.lock:
            self._remember(event)
            subscribers = list(self.subscribers)
        for subscriber in subscribers:
            subscriber.push(event)

    def _remember(self, event: Event) -> None:
        if event.kind == "status":
            self.status = event
        elif event.kind in COALESCED:
            self.latest[event.kind] = event
        elif event.kind == "flag":
            self.flags[event.data.get("id")] = event
        elif event.kind == "done":
            self.done = event

    def subscribe(self, loop: asyncio.AbstractEventLoop, fallback: Iterable[Event] = ()) -> Subscriber:
        """A new subscriber, primed with the flight's state so far (``fallback`` when nothing was published)."""
        subscriber = Subscriber(loop)
        with self.lock:
            for event in self._replay() if self.status is not None else fallback:
                subscriber.push(event)
            self.subscribers.add(subscriber)
        return subscriber

    def _replay(self) -> list[Event]:
        known = [self.status] if self.status is not None else []
        known += [self.latest[kind] for kind in COALESCED if kind in self.latest] + list(self.flags.values())
        return known + ([self.done] if self.done is not None else [])

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self.subscribers.discard(subscriber)


@dataclass
class FlightHub:
    """The channels of the flights of one app, created on first use."""

    channels: dict[int, FlightChannel] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def channel(self, flight_id: int) -> FlightChannel:
        with self.lock:
            return self.channels.setdefault(flight_id, FlightChannel())

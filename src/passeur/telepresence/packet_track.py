"""A viewer's track of pre-encoded packets shared by one encoder (video and sound).

The encoder hands every viewer's track the same `av.Packet`s (aiortc packetizes them without
re-encoding); `put(None)` ends the stream. What a track keeps when its viewer falls behind is
the subclass's rule (`put`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class _Encoder(Protocol):
    def unsubscribe(self, track: Any) -> None: ...


class PacketTrack(MediaStreamTrack):
    def __init__(self, encoder: _Encoder, maxlen: int | None = None) -> None:
        super().__init__()
        self._encoder = encoder
        self._queue: deque[Any] = deque(maxlen=maxlen)
        self._event = asyncio.Event()
        self.dropped = 0

    def _push(self, packet: Any) -> None:
        """Queue a packet (None: end of stream) and wake `recv`."""
        self._queue.append(packet)
        self._event.set()

    async def recv(self) -> Any:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._queue:
                packet = self._queue.popleft()
                if packet is None:
                    self.stop()
                    raise MediaStreamError
                return packet
            self._event.clear()
            await self._event.wait()

    def stop(self) -> None:
        super().stop()
        self._encoder.unsubscribe(self)
        self._event.set()

"""The reader feature hosted by the real web server (telepresence node) in the stack: the page
and API are served, and the page's microphone reaches the reading node over WebRTC through
the server's own peer connections (ICE on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.reading_audio import espeak_available, reading, save
from tests.support.ros_harness import StackHarness

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")

TP = {"http_port": 0, "ice_host_addresses": "127.0.0.1", "audio_mic": "silence",
      "audio_speaker": "none"}


async def _read_over_webrtc(base: str, wav: Path) -> list[dict[str, Any]]:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http:
        page = await (await http.get(f"{base}/reader")).text()
        assert "reader.js" in page
        books = await (await http.get(f"{base}/api/reading/books")).json()
        assert any(b["id"] == "little-red-boat" for b in books)
        r = await http.post(f"{base}/api/reading/sessions",
                            json={"book": "little-red-boat", "page": 1, "mode": "i_read"})
        sid = (await r.json())["session"]
        async with http.ws_connect(f"{base}/api/reading/sessions/{sid}/events") as ws:
            pc = RTCPeerConnection()
            pc.addTrack(MediaPlayer(str(wav)).audio)
            await pc.setLocalDescription(await pc.createOffer())
            r = await http.post(f"{base}/api/reading/sessions/{sid}/offer",
                                json={"sdp": pc.localDescription.sdp, "type": "offer"})
            assert r.status == 200, await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(**(await r.json())))
            try:
                async with asyncio.timeout(90):
                    async for msg in ws:
                        events.append(json.loads(msg.data))
                        if events[-1].get("type") == "position" and events[-1]["position"] >= 15:
                            break
            finally:
                await pc.close()
    return events


def test_reader_served_by_the_telepresence_server(ros_context: Any, tmp_path: Path) -> None:
    wav = save(reading(["Tom has a small red boat.", "He takes it to the pond every day.",
                        "The boat can sail from one side to the other."], "en-us+f3", 130),
               tmp_path / "child.wav", rate=48000)
    h = StackHarness(ros_context, nodes=["reading", "telepresence"],
                     common={"use_sim_time": False},
                     per_node={"telepresence": TP,
                               "reading": {"progress_db": str(tmp_path / "p.sqlite3"),
                                           "play_on_speaker": "false"}})
    try:
        base = str(h.node("telepresence").server.base_url).rstrip("/")
        events = asyncio.run(_read_over_webrtc(base, wav))
    finally:
        h.close()
    positions = [e["position"] for e in events if e["type"] == "position"]
    assert positions and positions == sorted(positions) and positions[-1] >= 15

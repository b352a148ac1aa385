"""The reading node in the stack: speech/say -> robot speaks (speech/speaking latched true,
then false), bad messages ignored, bad parameters refused with a clear error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from std_msgs.msg import Bool, String

from passeur.errors import ConfigError
from passeur.ros import qos
from tests.support.ros_harness import StackHarness


def test_say_publishes_speaking_and_is_heard(ros_context: Any, tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"progress_db": str(tmp_path / "p.sqlite3"),
                                           "play_on_speaker": "false"}})
    try:
        h.subscribe("speech/speaking", Bool, qos.LATCHED, keep_history=True)
        h.wait_until(lambda: h.latest("speech/speaking") is not None, 15, "latched speaking")
        assert h.latest("speech/speaking").data is False
        h.publish("speech/say", String(data="not json"), qos.STATUS)
        h.publish("speech/say", String(data=json.dumps(
            {"text": "La bibliothèque ferme dans dix minutes.", "lang": "fr"})), qos.STATUS)
        h.wait_until(lambda: any(m.data for _, m in h.history("speech/speaking")), 20,
                     "speaking true")
        h.wait_until(lambda: h.latest("speech/speaking").data is False, 30, "speaking false")
        node = h.node("reading")
        spoken = node.service.spoken
        assert [s["text"] for s in spoken] == ["La bibliothèque ferme dans dix minutes."]
        assert spoken[0]["lang"] == "fr" and spoken[0]["duration_s"] > 1.0
        features = node.web_features()
        assert [f.name for f in features] == ["reader"]
    finally:
        h.close()


def test_bad_parameters_are_refused(ros_context: Any) -> None:
    with pytest.raises(ConfigError, match="asr_backend"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"asr_backend": "whisper"}})

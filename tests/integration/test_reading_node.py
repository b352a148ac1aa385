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
        node = h.node("reading")
        for nested in ("[" * 3000 + "]" * 3000, '{"text": ' * 3000 + '"x"' + "}" * 3000):
            node._on_say(String(data=nested))  # ignored with a warning, nothing escapes
        h.publish("speech/say", String(data=json.dumps(
            {"text": "La bibliothèque ferme dans dix minutes.", "lang": "fr"})), qos.STATUS)
        h.wait_until(lambda: any(m.data for _, m in h.history("speech/speaking")), 20,
                     "speaking true")
        h.wait_until(lambda: h.latest("speech/speaking").data is False, 30, "speaking false")
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


def test_a_wrong_model_path_fails_at_start_up_naming_the_setting(ros_context: Any,  # type: ignore[no-untyped-def]
                                                                 tmp_path) -> None:
    # Not when a child first opens a session: at start-up.
    with pytest.raises(ConfigError, match=r"vosk_models\.fr: model folder .*nope.* does not "
                                          r"exist"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"asr_backend": "vosk",
                                           "vosk_models": json.dumps({"fr": str(tmp_path /
                                                                                "nope")}),
                                           "progress_db": str(tmp_path / "p.sqlite3")}})
    with pytest.raises(ConfigError, match=r"pocketsphinx_models\.fr\.hmm"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"pocketsphinx_models": json.dumps(
                         {"fr": {"hmm": str(tmp_path / "hmm"), "dict": str(tmp_path / "d")}}),
                         "progress_db": str(tmp_path / "p.sqlite3")}})


def test_a_tutor_policy_that_would_nag_fails_at_start_up(ros_context: Any,  # type: ignore[no-untyped-def]
                                                          tmp_path) -> None:
    """stuck_s: 0 let the tutor speak at every audio frame: refused when the node starts,
    naming the file, the setting and its range."""
    from passeur.paths import share_path

    config = tmp_path / "reading.yaml"
    config.write_text(share_path("config", "reading.yaml").read_text(encoding="utf-8")
                      .replace("  stuck_s: 4.0", "  stuck_s: 0"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"reading\.yaml: policy: stuck_s must be a number "
                                          r"from 1 to 60 s \(got 0\)"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"reading_config": str(config),
                                           "progress_db": str(tmp_path / "p.sqlite3")}})


def test_recogniser_settings_from_the_parameter_file(ros_context: Any,  # type: ignore[no-untyped-def]
                                                    tmp_path) -> None:
    db = str(tmp_path / "p.sqlite3")
    with pytest.raises(ConfigError, match=r"asr_settings.*topm is not a pocketsphinx setting.*"
                                          r"topn"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"asr_settings": '{"topm": 8}', "progress_db": db}})
    with pytest.raises(ConfigError, match=r"asr_settings.*topn must be a whole number"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"asr_settings": '{"topn": 0}', "progress_db": db}})
    with pytest.raises(ConfigError, match=r"asr_settings.*JSON object"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"asr_settings": "[8]", "progress_db": db}})
    h = StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"asr_settings": '{"topn": 8}', "progress_db": db,
                                           "play_on_speaker": "false"}})
    try:
        service = h.node("reading").service
        assert service.config.asr_settings["topn"] == 8
        assert service.backend().topn == 8  # type: ignore[attr-defined]
    finally:
        h.close()


def test_listening_settings_are_declared_parameters(ros_context: Any, tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"progress_db": str(tmp_path / "p.sqlite3"),
                                           "play_on_speaker": "false", "endpoint_ms": 800,
                                           "max_sessions": 2, "echo_tail_s": 0.5,
                                           "vad_aggressiveness": 3, "session_busy_s": 12.5}})
    try:
        node = h.node("reading")
        config = node.service.config
        assert (config.endpoint_ms, config.max_sessions, config.echo_tail_s,
                config.vad_aggressiveness, config.busy_s) == (800, 2, 0.5, 3, 12.5)
        for name in ("endpoint_ms", "vad_aggressiveness", "echo_tail_s", "max_sessions",
                     "session_busy_s"):
            descriptor = node.describe_parameters([name])[0]
            assert descriptor.description, name
    finally:
        h.close()
    with pytest.raises(ConfigError, match="vad_aggressiveness"):
        StackHarness(ros_context, nodes=["reading"], common={"use_sim_time": False},
                     per_node={"reading": {"vad_aggressiveness": 7}})

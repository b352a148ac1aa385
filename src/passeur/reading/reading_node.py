"""The reading node (`reading`): owns the robot's speaker and serves the reader page.

- subscribes `speech/say` (std_msgs/String, JSON {"text": "...", "lang": "fr"|"en"}): patrol
  announcements and anything else the robot must say go through here, in order;
- publishes `speech/speaking` (std_msgs/Bool, LATCHED): true while the robot speaks (the
  reading microphone is ignored meanwhile; other areas can do the same);
- `web_features()`: the reader page `/reader` and `/api/reading/...` (see web_reader.py).
Synthesis, playback and speech recognition run in the service's worker threads, never in an
executor callback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rclpy.node import Node
from std_msgs.msg import Bool, String

from passeur.errors import ConfigError
from passeur.reading.exceptions import ASRSettingsError, ReadingError, SpeakerBusy
from passeur.reading.service import ReadingService, ServiceConfig
from passeur.reading.session import SENTENCE_ENDPOINT_MS
from passeur.reading.tts import audio_player, speaker_wanted
from passeur.ros import qos
from passeur.ros.params import declare


def _json_param(value: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(value or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"reading parameter '{name}' must be a JSON object ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"reading parameter '{name}' must be a JSON object, e.g. "
                          '\'{"fr": "/path/to/model"}\'')
    return data


class ReadingNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("reading", **kwargs)
        books_dir = declare(self, "books_dir", "", "folder of books (.md); empty = config/books")
        backend = declare(self, "asr_backend", "pocketsphinx",
                          "speech recognition: 'pocketsphinx' (English built in) or 'vosk'")
        vosk_models = declare(self, "vosk_models", "{}",
                              'vosk model folders per language, JSON: {"fr": "/path", ...} '
                              "(https://alphacephei.com/vosk/models)")
        ps_models = declare(self, "pocketsphinx_models", "{}",
                            'extra pocketsphinx models, JSON: {"fr": {"hmm": DIR, "dict": FILE}}')
        asr_settings = declare(self, "asr_settings", "{}",
                               "more recogniser settings, JSON, e.g. {\"topn\": 8} (pocketsphinx: "
                               "fewer Gaussians per frame, faster on a slow robot; see "
                               "docs/reading.md)")
        db = declare(self, "progress_db", "",
                     "SQLite file of reading progress; empty = ~/.local/share/passeur/")
        store_audio = declare(self, "store_audio", False,
                              "keep children's recordings with their progress (off: never stored)")
        adapt = declare(self, "adapt_to_reader", True,
                        "adapt the recogniser to each named reader from their saved readings "
                        "(speaker adaptation: statistics kept with their progress, never "
                        "audio; deleted with the reader)")
        hesitation = declare(self, "hesitation_s", 2.0, "pause before a word counted as a "
                             "hesitation (s)", min_value=0.5, max_value=10.0)
        rate = declare(self, "tts_rate_wpm", 140, "robot speaking rate (words/min)",
                       min_value=60, max_value=400)
        speaker = declare(self, "play_on_speaker", "auto", "play robot speech on the local "
                          "speaker: 'auto' (if a sound card exists), 'true', 'false'")
        device = declare(self, "speaker_device", "", "ALSA device for the speaker; empty = default")
        microphone = declare(self, "microphone_device", "", "local microphone (PortAudio name "
                             "or index) for sessions with source 'robot'; empty = none")
        reading_config = declare(self, "reading_config", "",
                                 "phrases and tutor policy (YAML); empty = config/reading.yaml")
        endpoint_ms = declare(self, "endpoint_ms", 600, "a pause this long (ms of no voice) "
                              "ends an utterance: the recogniser finalises its words",
                              min_value=200, max_value=3000)
        sentence_endpoint_ms = declare(
            self, "sentence_endpoint_ms", SENTENCE_ENDPOINT_MS, "a pause this long (ms of no "
            "voice) after the last word of a sentence ends the utterance, so that word is "
            "highlighted without waiting for endpoint_ms; 0 = off", min_value=0, max_value=3000)
        vad = declare(self, "vad_aggressiveness", 2, "webrtcvad: 0 = lenient (more sounds "
                      "count as voice) .. 3 = strict", min_value=0, max_value=3)
        echo_tail_s = declare(self, "echo_tail_s", 0.3, "the microphone stays muted this long "
                              "after the robot stops speaking (room echo) (s)",
                              min_value=0.0, max_value=3.0)
        max_sessions = declare(self, "max_sessions", 4, "live reading sessions at once; a new "
                               "one ends the oldest not in use (see session_busy_s), or is "
                               "refused when all are", min_value=1, max_value=32)
        busy_s = declare(self, "session_busy_s", 30.0, "a reading session whose child was "
                         "heard within this long is in use: a new session never ends it (s)",
                         min_value=0.0, max_value=3600.0)
        if backend not in ("pocketsphinx", "vosk"):
            raise ConfigError(f"reading parameter 'asr_backend' must be 'pocketsphinx' or "
                              f"'vosk', not '{backend}'")
        settings: dict[str, Any] = ({"models": _json_param(vosk_models, "vosk_models")}
                                    if backend == "vosk" else
                                    {"models": _json_param(ps_models, "pocketsphinx_models")})
        extra = _json_param(asr_settings, "asr_settings")
        if "models" in extra:
            raise ConfigError(f"reading parameter 'asr_settings': set models with "
                              f"'{backend}_models', not here")
        settings.update(extra)
        sound_card, player = Path("/dev/snd").exists(), audio_player()
        play = speaker_wanted(speaker, sound_card, player)
        if speaker == "auto" and sound_card and player is None:
            self.get_logger().warning("a sound card but no audio player (aplay/paplay): robot "
                                      "speech plays on the reader page only; install Debian "
                                      "alsa-utils for the robot's speaker")
        config = ServiceConfig(
            books_dir=Path(books_dir) if books_dir else None, asr_backend=backend,
            asr_settings=settings, progress_db=Path(db) if db else None,
            store_audio=bool(store_audio), reading_config=Path(reading_config)
            if reading_config else None, hesitation_s=float(hesitation),
            tts_rate_wpm=int(rate), play_on_speaker=play, speaker_device=device or None,
            microphone_device=microphone or None, endpoint_ms=int(endpoint_ms),
            sentence_endpoint_ms=int(sentence_endpoint_ms),
            vad_aggressiveness=int(vad), echo_tail_s=float(echo_tail_s),
            max_sessions=int(max_sessions), busy_s=float(busy_s), adapt_to_reader=bool(adapt))
        self._speaking_pub = self.create_publisher(Bool, "speech/speaking", qos.LATCHED)
        self._speaking_pub.publish(Bool(data=False))
        try:
            self.service = ReadingService(config, on_speaking=self._publish_speaking)
        except ASRSettingsError as exc:  # the service makes the backend at start-up
            name = "asr_settings" if extra else f"{backend}_models"
            raise ConfigError(f"reading parameter '{name}': {exc}") from exc
        except ReadingError as exc:
            raise ConfigError(str(exc)) from exc
        self.create_subscription(String, "speech/say", self._on_say, qos.STATUS)
        self._closed = False

    def _publish_speaking(self, speaking: bool) -> None:
        if not self._closed:
            self._speaking_pub.publish(Bool(data=speaking))

    def _on_say(self, msg: String) -> None:
        # Only parse and queue here: synthesis and playback happen in the speech thread.
        try:
            data = json.loads(msg.data)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            self.service.say(str(data.get("text", "")), str(data.get("lang", "fr")),
                             kind="announcement")
        except SpeakerBusy as exc:
            # A flooding publisher: one line every few seconds, not one per message.
            self.get_logger().warning(f"speech/say dropped: {exc}", throttle_duration_sec=5.0)
        except RecursionError:
            self.get_logger().warning("speech/say ignored: JSON nested too deeply (expected "
                                      '{"text": "...", "lang": "fr"|"en"})')
        except (ValueError, ReadingError) as exc:
            self.get_logger().warning(f"speech/say ignored: {exc} (expected JSON "
                                      '{"text": "...", "lang": "fr"|"en"})')

    def web_features(self) -> list[Any]:
        from passeur.reading.web_reader import ReaderFeature

        return [ReaderFeature(self.service)]

    def close(self) -> None:
        if self._closed:
            return
        self.service.close()
        self._publish_speaking(False)
        self._closed = True

"""Link quality of one viewer, from aiortc's RTCP statistics, in words for the staff page.

aiortc copies the browser's RTCP receiver report as it is (RFC 3550 section 6.4.1):
- `jitter` is in RTP timestamp units, i.e. ticks of the codec's clock (90 kHz for every video
  codec, 48 kHz for Opus), not seconds;
- `fractionLost` is the 8-bit fixed-point fraction lost since the previous report (0..255,
  /256), `packetsLost` the cumulative count;
- `roundTripTime` is in seconds (from the report's LSR/DLSR), None until a report arrives.

Thresholds for the words follow the usual VoIP/telepresence guidance (ITU-T G.114: up to
150 ms one way is good, 300 ms round trip is where a conversation starts to suffer; more than
a few per cent loss is visible in video).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

#: RTP clock rates (Hz) by media kind (RFC 3551 / RFC 7587).
CLOCK_RATE_HZ = {"video": 90_000, "audio": 48_000}

GOOD, FAIR, POOR, UNKNOWN = "good", "fair", "poor", "unknown"


@dataclass(frozen=True)
class LinkStats:
    rtt_ms: float | None = None
    loss_pct: float | None = None  # recent (since the previous receiver report)
    packets_lost: int | None = None  # cumulative
    jitter_ms: float | None = None
    quality: str = UNKNOWN

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def jitter_ms(jitter_ticks: float, kind: str = "video") -> float:
    """RTCP interarrival jitter (RTP clock ticks) in milliseconds."""
    return float(jitter_ticks) * 1000.0 / CLOCK_RATE_HZ.get(kind, CLOCK_RATE_HZ["video"])


def classify(rtt_ms: float | None, loss_pct: float | None, jitter: float | None) -> str:
    """'good', 'fair', 'poor', or 'unknown' before any receiver report."""
    if rtt_ms is None and loss_pct is None and jitter is None:
        return UNKNOWN
    rtt, loss, jit = rtt_ms or 0.0, loss_pct or 0.0, jitter or 0.0
    if rtt >= 300.0 or loss >= 5.0 or jit >= 50.0:
        return POOR
    if rtt >= 150.0 or loss >= 1.0 or jit >= 20.0:
        return FAIR
    return GOOD


def link_stats(report: Iterable[Any], kind: str = "video") -> LinkStats:
    """Summarise an RTCStatsReport's values (the remote-inbound-rtp of `kind`)."""
    for stats in report:
        if getattr(stats, "type", "") != "remote-inbound-rtp" \
                or getattr(stats, "kind", "") != kind:
            continue
        rtt_s = getattr(stats, "roundTripTime", None)
        rtt = None if rtt_s is None else round(float(rtt_s) * 1000.0, 1)
        fraction = getattr(stats, "fractionLost", None)
        loss = None if fraction is None else round(float(fraction) * 100.0 / 256.0, 1)
        lost = getattr(stats, "packetsLost", None)
        ticks = getattr(stats, "jitter", None)
        jit = None if ticks is None else round(jitter_ms(ticks, kind), 1)
        return LinkStats(rtt, loss, None if lost is None else int(lost), jit,
                         classify(rtt, loss, jit))
    return LinkStats()

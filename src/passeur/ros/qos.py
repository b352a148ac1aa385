"""QoS profiles used across the stack, named for what they carry."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Sensor streams (scan, camera): newest sample matters, losing one is fine.
SENSOR = qos_profile_sensor_data

#: Velocity commands and other control streams: reliable, shallow.
COMMAND = QoSProfile(
    depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
)

#: Latched state (map, estop, status snapshots): late joiners get the last value.
LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

#: Subscribing to a latched stream of events (navigation/status, published LATCHED): the
#: newest on joining, then every one after it. Deeper than LATCHED so that a burst of
#: transitions (cancelled, then planning) waits for the callback instead of overwriting.
#: Matches transient-local publishers only; a volatile subscriber (STATUS) hears them too.
LATCHED_EVENTS = QoSProfile(
    depth=10,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

#: Ordinary reliable state/status topics.
STATUS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)

#: What a publisher created with rclpy/rclcpp's default QoS offers (reliable, volatile, 10):
#: subscribe with this too when third-party publishers (drivers, tools) must be heard.
ROS_DEFAULT = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)

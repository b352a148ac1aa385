"""Passeur: a ROS 2 stack for robots in libraries and museums."""

__version__ = "0.1.0"

"""Synthetic building maps (rooms joined by doorways, a corridor) for planning benchmarks."""

from __future__ import annotations

import numpy as np

from passeur.navigation.map_io import FREE, OCCUPIED, OccupancyMap


def building_map(size_m: float, resolution_m: float = 0.05, room_m: float = 5.0,
                 wall_m: float = 0.2, door_m: float = 1.0, seed: int = 7) -> OccupancyMap:
    """A square floor of rooms (room_m wide) with one door per shared wall, some walls
    removed, and a corridor along one row of rooms: plenty of corners and doorways."""
    rng = np.random.default_rng(seed)
    n = int(round(size_m / resolution_m))
    data = np.full((n, n), FREE, dtype=np.int8)
    wall = max(int(round(wall_m / resolution_m)), 1)
    door = int(round(door_m / resolution_m))
    room = int(round(room_m / resolution_m))
    data[:wall, :] = OCCUPIED
    data[-wall:, :] = OCCUPIED
    data[:, :wall] = OCCUPIED
    data[:, -wall:] = OCCUPIED
    rooms = n // room
    for i in range(1, rooms):
        line = i * room
        for j in range(rooms):
            a, b = j * room, min((j + 1) * room, n)
            # vertical wall at column `line`, between rows a..b
            data[a:b, line - wall // 2: line - wall // 2 + wall] = OCCUPIED
            # horizontal wall at row `line`, between columns a..b
            data[line - wall // 2: line - wall // 2 + wall, a:b] = OCCUPIED
    for i in range(1, rooms):
        line = i * room
        for j in range(rooms):
            a = j * room
            for vertical in (True, False):
                if rng.random() < 0.35:
                    continue  # no door here: longer detours
                off = int(rng.integers(wall + 2, room - door - wall - 2))
                if vertical:
                    data[a + off: a + off + door, line - wall: line + wall] = FREE
                else:
                    data[line - wall: line + wall, a + off: a + off + door] = FREE
    # Keep everything connected: a door in the first column and the first row of walls.
    for i in range(1, rooms):
        line = i * room
        mid = room // 2
        data[line - wall: line + wall, mid - door // 2: mid + door // 2] = FREE
    return OccupancyMap(data, resolution_m, 0.0, 0.0)

"""Synthetic building floors for the planning benchmarks: corridors and rooms.

The floor is a grid of corridors (`corridor_m` wide, the outer ring included) around blocks
of 2 x 2 rooms; every room has one door (`door_m`) onto a corridor, on a side drawn at random,
and some rooms also open onto a neighbour in their block. Walls are `wall_m` thick. Blocks are
stretched to fill the floor, so rooms are `room_m` or a little larger.

The longest path such a floor allows runs from a corner room along the corridors to the
opposite corner room: about twice the floor's side (Manhattan distance through the corridor
grid) - ~75 m on the 40 x 40 m floor, the path length of Nav2's published planner figures.
"""

from __future__ import annotations

import numpy as np

from passeur.navigation.map_io import FREE, OCCUPIED, OccupancyMap


def _axis(size_m: float, room_m: float, corridor_m: float) -> tuple[int, float]:
    """(number of blocks along one side, block size in metres)."""
    pitch = 2.0 * room_m + corridor_m
    blocks = max(int((size_m - corridor_m) // pitch), 1)
    return blocks, (size_m - (blocks + 1) * corridor_m) / blocks


def building_map(size_m: float, resolution_m: float = 0.05, room_m: float = 5.0,
                 corridor_m: float = 2.0, wall_m: float = 0.2, door_m: float = 1.0,
                 seed: int = 7) -> OccupancyMap:
    """A square floor of corridors and rooms (see module docstring), origin (0, 0)."""
    rng = np.random.default_rng(seed)
    n = int(round(size_m / resolution_m))

    def cells(m: float) -> int:
        return int(round(m / resolution_m))

    data = np.full((n, n), OCCUPIED, dtype=np.int8)
    wall, door = max(cells(wall_m), 1), cells(door_m)
    blocks, block_m = _axis(size_m, room_m, corridor_m)
    # Block extents along an axis (cells): corridor, block, corridor, ..., block, corridor.
    starts = [cells(corridor_m + i * (block_m + corridor_m)) for i in range(blocks)]
    size = cells(block_m)
    half = size // 2
    # Corridors: every band between blocks and the outer ring, inside the outer wall.
    for k in range(blocks + 1):
        a = 0 if k == 0 else starts[k - 1] + size
        b = starts[k] if k < blocks else n
        data[max(a, wall):min(b, n - wall), wall:n - wall] = FREE
        data[wall:n - wall, max(a, wall):min(b, n - wall)] = FREE
    for br in starts:
        for bc in starts:
            # 2 x 2 rooms; room (i, j) spans rows r0..r1, cols c0..c1 (interior, free).
            for i in (0, 1):
                for j in (0, 1):
                    r0 = br + (wall if i == 0 else half + wall // 2)
                    r1 = br + (half - (wall - wall // 2) if i == 0 else size - wall)
                    c0 = bc + (wall if j == 0 else half + wall // 2)
                    c1 = bc + (half - (wall - wall // 2) if j == 0 else size - wall)
                    data[r0:r1, c0:c1] = FREE
                    # One door onto the corridor: the room's outer side along rows or cols.
                    if rng.random() < 0.5:
                        off = int(rng.integers(r0 + 2, max(r1 - door - 2, r0 + 3)))
                        cw = slice(bc, c0) if j == 0 else slice(c1, bc + size)
                        data[off:off + door, cw] = FREE
                    else:
                        off = int(rng.integers(c0 + 2, max(c1 - door - 2, c0 + 3)))
                        rw = slice(br, r0) if i == 0 else slice(r1, br + size)
                        data[rw, off:off + door] = FREE
            # Some rooms open onto their neighbour (through the block's inner walls).
            mid_r, mid_c = br + half, bc + half
            for side in range(4):
                if rng.random() < 0.5:
                    continue
                off = int(rng.integers(wall + 2, half - door - wall - 2))
                if side == 0:    # rooms (0,0)-(0,1): vertical inner wall, lower half
                    data[br + off:br + off + door, mid_c - wall:mid_c + wall] = FREE
                elif side == 1:  # rooms (1,0)-(1,1): vertical inner wall, upper half
                    data[mid_r + off:mid_r + off + door, mid_c - wall:mid_c + wall] = FREE
                elif side == 2:  # rooms (0,0)-(1,0): horizontal inner wall, left half
                    data[mid_r - wall:mid_r + wall, bc + off:bc + off + door] = FREE
                else:            # rooms (0,1)-(1,1): horizontal inner wall, right half
                    data[mid_r - wall:mid_r + wall, mid_c + off:mid_c + off + door] = FREE
    return OccupancyMap(data, resolution_m, 0.0, 0.0)

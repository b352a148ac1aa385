"""MuJoCo's two hot calls (`mj_step`, `mj_multiRay`) made without releasing the GIL.

Why: MuJoCo's Python bindings release the GIL for every call. A 2 ms physics step takes
~15 us, but taking the GIL back afterwards waits for whichever thread holds it, and with ROS
executor threads in the same interpreter that wait is long: up to the interpreter's switch
interval (5 ms) when one of them runs Python (the "convoy effect"). Measured in the stack
(`benchmarks/sim_rtf.py`, 2 cores): 0.76 ms of wall time per 10 ms physics chunk whose own
CPU cost is 0.07 ms; without the release, 0.17 ms.

How: `ctypes.PyDLL` calls a C function while holding the GIL. This module calls the same
library the bindings load (`libmujoco.so.<version>` inside the `mujoco` package), with the
model and data addresses the bindings expose (`MjModel._address`, `MjData._address`).

Guards, since a direct call bypasses what the bindings add:
- it is used only if the installed MuJoCo is the version whose C signatures are written below
  and its header still declares them (`available()` says why not otherwise);
- the bindings turn a MuJoCo fatal error into a Python exception, a direct call cannot (the
  process would exit). The fatal error these two calls can meet is running out of MuJoCo's
  memory (the arena and the stack share one buffer: ~13 MB here, of which a step uses
  ~17 kB), so `DirectStepper` hands back to the bindings for good once more than half of it
  has been used (`maxuse_arena + maxuse_stack`, checked after each step chunk and each ray
  sweep), and the bindings' exception would then stop the simulator cleanly.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: The MuJoCo release whose C signatures are declared below (requirements.txt pins it).
SUPPORTED_VERSION = "4.0.0"
#: The declarations this module relies on, as the release's mujoco.h writes them
#: (whitespace-insensitive).
_DECLARATIONS = {
    "mj_step": "MJAPI void mj_step(const mjModel* m, mjData* d);",
    "mj_multiRay": ("MJAPI void mj_multiRay(const mjModel* m, mjData* d, const mjtNum pnt[3], "
                    "const mjtNum* vec, const mjtByte* geomgroup, mjtBool flg_static, "
                    "int bodyexclude, int* geomid, mjtNum* dist, mjtNum* normal, int nray, "
                    "mjtNum cutoff);"),
}
#: Hand back to the bindings once a step has used more than this share of the arena+stack.
ARENA_SHARE_LIMIT = 0.5

_library: Any = None
_unavailable: str | None = None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def why_not(version: str, package: Path) -> str | None:
    """Why direct calls cannot be used with MuJoCo `version` installed in `package` (the
    `mujoco` package folder), or None if they can."""
    lib_path = package / f"libmujoco.so.{version}"
    header = package / "include" / "mujoco" / "mujoco.h"
    if version != SUPPORTED_VERSION:
        return f"MuJoCo {version} installed, direct calls written for {SUPPORTED_VERSION}"
    if not lib_path.is_file() or not header.is_file():
        return f"{lib_path.name} or include/mujoco/mujoco.h not found in {package}"
    declared = _squash(header.read_text(errors="replace"))
    missing = [name for name, decl in _DECLARATIONS.items() if _squash(decl) not in declared]
    if missing:
        return f"mujoco.h does not declare {', '.join(missing)} as this module calls them"
    return None


def _load() -> None:
    global _library, _unavailable
    if _library is not None or _unavailable is not None:
        return
    import mujoco

    version = getattr(mujoco, "__version__", "?")
    package = Path(mujoco.__file__).parent
    _unavailable = why_not(version, package)
    if _unavailable is not None:
        log.info("MuJoCo calls go through the bindings (%s)", _unavailable)
        return
    try:
        # The copy the bindings loaded (found through their RUNPATH), not a second one that
        # LD_LIBRARY_PATH might point to: RTLD_NOLOAD only returns an already loaded library.
        try:
            lib = ctypes.PyDLL(f"libmujoco.so.{version}", mode=os.RTLD_NOLOAD)
        except OSError:
            lib = ctypes.PyDLL(str(package / f"libmujoco.so.{version}"))
        _declare(lib)
    except (OSError, AttributeError) as exc:
        _unavailable = f"loading libmujoco.so.{version} failed: {exc}"
        log.info("MuJoCo calls go through the bindings (%s)", _unavailable)
        return
    _library = lib


def _declare(lib: Any) -> None:
    lib.mj_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.mj_step.restype = None
    lib.mj_multiRay.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_bool, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_int, ctypes.c_double]
    lib.mj_multiRay.restype = None


def available() -> tuple[bool, str]:
    """(True, "") if direct calls can be used, else (False, why not)."""
    _load()
    return _library is not None, _unavailable or ""


class DirectStepper:
    """`step(n)` and `multi_ray(...)` for one (model, data) pair, GIL held throughout.

    Falls back to the bindings' functions (same results, GIL released) when direct calls are
    unavailable, disabled (`enabled=False`), or the arena guard has tripped."""

    def __init__(self, model: Any, data: Any, *, enabled: bool = True) -> None:
        import mujoco

        self._mj = mujoco
        self.model = model
        self.data = data
        ok, why = available()
        self.direct = bool(enabled and ok)
        self.reason = "" if self.direct else (why or "disabled")
        self._memory_limit = ARENA_SHARE_LIMIT * float(data.narena)
        if self.direct:
            self._lib = _library
            self._m = ctypes.c_void_p(model._address)
            self._d = ctypes.c_void_p(data._address)

    def step(self, count: int) -> None:
        if not self.direct:
            self._mj.mj_step(self.model, self.data, count)
            return
        lib, m, d = self._lib, self._m, self._d
        for _ in range(count):
            lib.mj_step(m, d)
        self._check_memory()

    def _check_memory(self) -> None:
        used = self.data.maxuse_arena + self.data.maxuse_stack
        if used > self._memory_limit:
            self.direct = False
            self.reason = (f"MuJoCo memory use {int(used)} of {int(self.data.narena)} bytes: the "
                           f"bindings, which turn MuJoCo errors into exceptions, take over")
            log.warning("simulator: %s", self.reason)

    def multi_ray(self, origin: npt.NDArray[np.float64], vectors: npt.NDArray[np.float64],
                  geomgroup: npt.NDArray[np.uint8], flg_static: bool, body_exclude: int,
                  geom_id: npt.NDArray[np.int32], dist: npt.NDArray[np.float64],
                  count: int, cutoff: float) -> None:
        """mj_multiRay with contiguous arrays: origin (3,), vectors (3*count,) float64,
        geomgroup (6,) uint8; geom_id (count,) int32 and dist (count,) float64 are filled."""
        if not self.direct:
            self._mj.mj_multiRay(self.model, self.data, origin, vectors, geomgroup,
                                 int(flg_static), body_exclude, geom_id, dist, None, count,
                                 cutoff)
            return
        for array, dtype, size in ((origin, np.float64, 3), (vectors, np.float64, 3 * count),
                                   (geomgroup, np.uint8, 6), (geom_id, np.int32, count),
                                   (dist, np.float64, count)):
            if array.dtype != dtype or not array.flags.c_contiguous or array.size < size:
                raise ValueError(f"multi_ray: need a contiguous {np.dtype(dtype).name} array "
                                 f"of {size}, got {array.dtype} of {array.size}")
        if not (geom_id.flags.writeable and dist.flags.writeable):
            raise ValueError("multi_ray: geom_id and dist must be writeable")
        self._lib.mj_multiRay(self._m, self._d, origin.ctypes.data, vectors.ctypes.data,
                              geomgroup.ctypes.data, bool(flg_static), int(body_exclude),
                              geom_id.ctypes.data, dist.ctypes.data, None, int(count),
                              float(cutoff))
        self._check_memory()

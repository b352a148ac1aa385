"""Offscreen rendering of one fixed MuJoCo camera into a reused buffer. No rclpy here.

What `mujoco.Renderer` does for an RGB image, less what a 15 Hz sim camera does not need:
its render() allocates a new image, flips it in place (through a temporary copy) and copies
the scene flags around every frame. Here the pixels are read into one buffer and handed out
as a top-down *view* of it, so that the one copy a frame needs is the one into the ROS
message. The OpenGL context is made current once, in the thread that creates the camera:
create, use and close it in that one thread, with no other GL context made current there in
between (making it current again each frame would cost a GIL round trip: PyOpenGL releases
the GIL for every call).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from passeur.errors import ConfigError

#: Scene geometry capacity (mujoco.Renderer's default).
MAX_GEOMS = 10_000


class OffscreenCamera:
    def __init__(self, model: Any, camera_id: int, width: int, height: int) -> None:
        import mujoco
        from mujoco import gl_context

        self._mj = mujoco
        offwidth, offheight = model.vis.global_.offwidth, model.vis.global_.offheight
        if width > offwidth or height > offheight:
            raise ConfigError(f"camera image {width}x{height} is larger than the model's "
                              f"offscreen buffer {offwidth}x{offheight} (MJCF <visual><global "
                              f"offwidth offheight>)")
        context_class = getattr(gl_context, "GLContext", None)
        no_gl = ("no OpenGL for the camera ({}): run headless with MUJOCO_GL=egl (Debian "
                 "packages libegl1 and libgl1-mesa-dri), or turn the camera off "
                 "(camera_rate_hz 0)")
        if context_class is None:
            raise ConfigError(no_gl.format(f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')}"))
        try:
            self._gl: Any = context_class(width, height)
        except (ImportError, RuntimeError, OSError) as exc:
            raise ConfigError(no_gl.format(exc)) from exc
        self._context: Any = None
        try:
            self._gl.make_current()
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        except BaseException:
            self._free()
            raise
        self.scene: Any = mujoco.MjvScene(model, maxgeom=MAX_GEOMS)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):
            self.scene.flags[flag] = 0
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = camera_id
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._pixels = np.empty((height, width, 3), dtype=np.uint8)  # bottom row first

    def update(self, model: Any, data: Any) -> None:
        """Take the scene from `data` (the caller holds whatever lock guards it)."""
        mj = self._mj
        mj.mjv_updateScene(model, data, self._option, self._perturb, self._camera,
                           mj.mjtCatBit.mjCAT_ALL, self.scene)

    def render(self, into: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]:
        """Render the last `update()`: an H x W x 3 RGB view, top row first, of a buffer the
        next render overwrites (copy it to keep it). `into` (H x W x 3, C-contiguous, e.g.
        a shared-memory slot) receives the pixels instead of the camera's own buffer; it is
        filled bottom row first and the view returned is of it."""
        if self._context is None:
            raise RuntimeError("OffscreenCamera.render() after close()")
        pixels = self._pixels if into is None else into
        if pixels.shape != self._pixels.shape or not pixels.flags.c_contiguous:
            raise ValueError(f"render target must be a C-contiguous {self._pixels.shape} array")
        mj = self._mj
        mj.mjr_render(self._rect, self.scene, self._context)
        mj.mjr_readPixels(pixels, None, self._rect, self._context)
        return pixels[::-1]  # OpenGL's rows run bottom to top

    def close(self) -> None:
        """Free the GL resources; call from the thread that created the camera."""
        if self._gl is not None:
            self._free()

    def _free(self) -> None:
        try:
            if self._context is not None:
                # Its GL objects belong to our context: make it current (another context,
                # or none, may be current in this thread by now).
                with self._gl.as_current():
                    self._context.free()
        finally:
            self._context = None
            self._gl.free()
            self._gl = None

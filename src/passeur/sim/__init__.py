"""Embedded MuJoCo simulator: SDF world import, URDF robot, lidar, camera, the sim node."""

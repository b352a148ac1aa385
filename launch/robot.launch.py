"""The stack next to real robot drivers or Gazebo (they provide clock/odom/scan/camera):

    ros2 launch passeur robot.launch.py [world:=library|chateau] [namespace:=robot1]
        [params_file:=/path/to/params.yaml] [nodes:=safety,navigator] [split_processes:=false]

The same graph as `passeur robot` (passeur.bringup.NODES, profile `external`). With Gazebo,
start launch/gazebo.launch.py first and pass use_sim_time in the parameter file.
"""

from passeur.bringup import EXTERNAL
from passeur.launch_support import stack_launch_description


def generate_launch_description():  # type: ignore[no-untyped-def]
    return stack_launch_description(EXTERNAL)

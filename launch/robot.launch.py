"""The stack next to a real robot's drivers (they provide odom, scan, camera, tf):

    ros2 launch passeur robot.launch.py [world:=library|chateau] [namespace:=robot1]
        [params_file:=/path/to/params.yaml] [nodes:=safety,navigator] [split_processes:=false]

Starts the same graph as `passeur robot` (passeur.bringup.NODES, profile `external`: every
node but the embedded simulator) and nothing else: no simulator, no drivers, no
robot_state_publisher.

Not with Gazebo: launch/gazebo.launch.py starts this same stack itself (`passeur_stack
--profile external`, on Gazebo's clock) once the robot is spawned, so run it alone. Running
this file (or `passeur robot`) beside it gives two stacks: two safety nodes publishing
`cmd_vel`, two navigators, and two web servers on the same port. Use this file with another
simulator that publishes `/clock` only with `use_sim_time: true` under `/**` in the
parameter file.
"""

from passeur.bringup import EXTERNAL
from passeur.launch_support import stack_launch_description


def generate_launch_description():  # type: ignore[no-untyped-def]
    return stack_launch_description(EXTERNAL)

"""The simulated robot (embedded MuJoCo simulator + the whole stack), for ROS installs:

    ros2 launch passeur sim.launch.py [world:=library|chateau] [namespace:=robot1]
        [params_file:=/path/to/params.yaml] [nodes:=sim,safety] [split_processes:=false]

The same graph as `passeur sim` (passeur.bringup.NODES, profile `sim`); every node uses the
simulator's clock. `ros2 launch -s passeur sim.launch.py` lists the arguments.
"""

from passeur.bringup import SIM
from passeur.launch_support import stack_launch_description


def generate_launch_description():  # type: ignore[no-untyped-def]
    return stack_launch_description(SIM)

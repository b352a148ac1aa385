"""Small shared ROS helpers: QoS profiles, parameter declaration, pose maths."""

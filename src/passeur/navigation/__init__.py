"""Navigation: map IO, costmap, planner, controller, navigator node, patrols."""

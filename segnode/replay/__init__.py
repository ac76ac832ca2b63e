"""Rosbag replay evaluation: bags in, the node's service over them, reports out (no ROS)."""

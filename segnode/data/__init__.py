"""Datasets, class tables and transforms (numpy, OpenCV, torch; never the model or ROS)."""

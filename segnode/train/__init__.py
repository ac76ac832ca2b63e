"""Offline training: datasets in, checkpoints out (imports model and data, never engine or ROS)."""

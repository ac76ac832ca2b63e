"""ROS 2 adapter: the only package that imports rclpy."""

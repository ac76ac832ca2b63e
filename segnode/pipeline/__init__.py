"""The ROS-free node core: params, frame codec, latest-frame slots, the service, assembly."""

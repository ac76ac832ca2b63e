"""Entry point of ``segnode_node`` (``ros2 run segnode segnode_node``).

The lifecycle node arrives with the node issue; until then this entry point says so and exits
with status 2. When it lands, rclpy is imported inside ``main`` so that importing this module
stays cheap and the rest of segnode never needs ROS 2.
"""

from __future__ import annotations

import sys

__all__ = ['main']

NOT_IMPLEMENTED = (
    'segnode_node: the ROS 2 node is not implemented in this release yet (tracked in the node '
    'issue); use `segnode` for the offline tools'
)


def main(args: list[str] | None = None) -> int:
    """Run the node.

    Args:
        args: Command-line arguments (ROS arguments included); ``None`` means ``sys.argv``.

    Returns:
        The process exit status: 2, as the node is not implemented yet.
    """
    del args  # Unused until the node exists.
    print(NOT_IMPLEMENTED, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())

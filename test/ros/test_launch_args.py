"""Launch arguments override the params file only when given (no ROS needed for the logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segnode.ros.launch_args import given_overrides, OVERRIDES

LAUNCH = Path(__file__).resolve().parents[2] / 'launch'


def test_arguments_left_empty_leave_the_params_file_in_charge() -> None:
    assert given_overrides({'autostart': '', 'use_sim_time': ''}) == {}
    assert given_overrides({}) == {}


def test_given_arguments_become_typed_parameters() -> None:
    values = {'autostart': 'False', 'use_sim_time': ' true ', 'namespace': 'x'}
    assert given_overrides(values) == {'autostart': False, 'use_sim_time': True}


def test_a_value_that_is_not_a_bool_names_the_argument() -> None:
    with pytest.raises(ValueError, match="autostart:= must be true or false, got 'yes please'"):
        given_overrides({'autostart': 'yes please'})


@pytest.mark.parametrize('name', ['segnode.launch.py', 'multi_camera.launch.py'])
def test_both_launch_files_declare_every_override_through_the_helper(name: str) -> None:
    text = (LAUNCH / name).read_text()
    assert 'declare_overrides()' in text and 'segnode_node' in text  # the helper's node
    assert "'autostart'" not in text and "'use_sim_time'" not in text  # no second default
    assert set(OVERRIDES) == {'autostart', 'use_sim_time'}


@pytest.mark.ros
def test_the_launch_file_builds_its_node_with_and_without_overrides() -> None:
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (comes with ROS 2)')
    import importlib.util

    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError

    try:
        get_package_share_directory('segnode')  # the launch file's default params file
    except PackageNotFoundError:
        pytest.skip('segnode is not installed in a sourced workspace (colcon build, then '
                    'source install/setup.bash)')  # fmt: skip

    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location('segnode_launch', LAUNCH / 'segnode.launch.py')
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities
    context = LaunchContext()
    context.launch_configurations.update(
        {'params_file': 'p.yaml', 'namespace': '', 'camera_topic': 'c', 'autostart': ''}
    )
    for autostart in ('', 'false'):
        context.launch_configurations['autostart'] = autostart
        (node,) = module._node(context)
        assert type(node).__name__ == 'Node'

"""Packaging and layering checks: the ROS-free core, package.xml, setup.py data files."""

from __future__ import annotations

import configparser
from pathlib import Path
import runpy
import subprocess
import sys
from typing import Any
import xml.etree.ElementTree as ET

import pytest
import setuptools

import segnode

REPO = Path(__file__).resolve().parents[1]

# Modules that exist only in a ROS 2 (or TensorRT) install: the core must import without them.
ROS_ONLY = (
    'rclpy',
    'rosidl_runtime_py',
    'sensor_msgs',
    'std_msgs',
    'std_srvs',
    'vision_msgs',
    'diagnostic_msgs',
    'diagnostic_updater',
    'cv_bridge',
    'torch_tensorrt',
)

# Runs in a fresh interpreter. ``sys.modules[name] = None`` makes ``import name`` (and of any
# submodule) raise ImportError. segnode.ros is not entered; __main__ would run the CLI.
IMPORT_CORE = """
import importlib, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None
import segnode

def walk(path, prefix):
    for info in pkgutil.iter_modules(path, prefix):
        if info.name == 'segnode.ros' or info.name.endswith('.__main__'):
            continue
        module = importlib.import_module(info.name)
        yield info.name
        if info.ispkg:
            yield from walk(module.__path__, info.name + '.')

print('\\n'.join(walk(segnode.__path__, 'segnode.')))
"""

REQUIRED_EXEC_DEPENDS = {
    'rclpy',
    'sensor_msgs',
    'std_msgs',
    'std_srvs',
    'diagnostic_msgs',
    'diagnostic_updater',
    'vision_msgs',
    'cv_bridge',
    'launch',
    'launch_ros',
    'python3-numpy',
    'python3-opencv',
    'python3-yaml',
}


def test_core_imports_without_ros() -> None:
    proc = subprocess.run(
        [sys.executable, '-c', IMPORT_CORE.format(blocked=ROS_ONLY)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f'importing the core without ROS failed:\n{proc.stderr}'
    modules = proc.stdout.split()
    assert len(modules) >= 1, f'no segnode module found; stderr:\n{proc.stderr}'
    print(f'imported {len(modules)} modules without ROS: {", ".join(modules)}')


def test_package_xml() -> None:
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.tag == 'package'
    assert root.get('format') == '3'
    assert root.findtext('name') == 'segnode'
    assert root.findtext('export/build_type') == 'ament_python'
    exec_depends = {element.text for element in root.iter('exec_depend')}
    assert REQUIRED_EXEC_DEPENDS <= exec_depends, REQUIRED_EXEC_DEPENDS - exec_depends
    assert 'python3-pytest' in {element.text for element in root.iter('test_depend')}


@pytest.fixture(scope='module')
def setup_kwargs() -> dict[str, Any]:
    """The keyword arguments setup.py passes to ``setuptools.setup``, run from the repo root."""
    captured: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(setuptools, 'setup', captured.update)
        patch.chdir(REPO)
        runpy.run_path(str(REPO / 'setup.py'), run_name='__main__')
    return captured


def test_setup_data_files(setup_kwargs: dict[str, Any]) -> None:
    data_files = dict(setup_kwargs['data_files'])
    assert data_files['share/ament_index/resource_index/packages'] == ['resource/segnode']
    assert data_files['share/segnode'] == ['package.xml']
    assert 'launch/segnode.launch.py' in data_files['share/segnode/launch']
    assert 'config/segnode.yaml' in data_files['share/segnode/config']
    for files in data_files.values():
        for name in files:
            assert (REPO / name).is_file(), name


def test_setup_entry_points_and_versions(setup_kwargs: dict[str, Any]) -> None:
    scripts = setup_kwargs['entry_points']['console_scripts']
    assert 'segnode = segnode.cli:main' in scripts
    assert 'segnode_node = segnode.ros.node:main' in scripts
    assert 'segnode.ros' in setup_kwargs['packages']
    xml_version = ET.parse(REPO / 'package.xml').getroot().findtext('version')
    assert setup_kwargs['version'] == xml_version
    assert segnode.__version__ == xml_version


def test_setup_cfg_puts_scripts_where_ros2_run_looks() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / 'setup.cfg')
    assert cfg['develop']['script_dir'] == '$base/lib/segnode'
    assert cfg['install']['install_scripts'] == '$base/lib/segnode'

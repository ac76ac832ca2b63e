"""Setuptools build for segnode: an ament_python package that colcon and pip both install.

colcon needs ``setup.py`` plus ``setup.cfg`` (no ``[project]`` table in pyproject.toml). colcon
does not install ``install_requires``: on ROS machines numpy, PyYAML, OpenCV and Pillow come
from rosdep (package.xml) and torch from pip or an NGC container. ``opencv-python-headless``
is listed for plain pip installs; where ``python3-opencv`` already provides ``cv2``, pip may
install a second copy, so ROS users install segnode with colcon rather than pip.
"""

from __future__ import annotations

from glob import glob
from pathlib import Path
import re

from setuptools import find_packages, setup

PACKAGE = 'segnode'
# The version is written once, in segnode/version.py; read it without importing segnode.
VERSION = re.findall(
    r"^__version__ = '([^']+)'$",
    (Path(__file__).resolve().parent / PACKAGE / 'version.py').read_text(encoding='utf-8'),
    re.MULTILINE,
)[0]

# The ROS 2 Jazzy wheels that run segnode_node without a ROS install (community builds, x86_64
# Linux only). The extra pins the top-level ones; requirements/constraints.txt pins everything
# they pull in. Never install them into a sourced ROS 2 shell.
_ROS_WHEEL_PLATFORM = "platform_machine == 'x86_64' and sys_platform == 'linux'"
ROS_WHEELS = [
    'ros-jazzy-rclpy[fastrtps]==7.1.6',
    'ros-jazzy-sensor-msgs==5.3.6',
    'ros-jazzy-std-srvs==5.3.6',
    'ros-jazzy-diagnostic-msgs==5.3.6',
    'ros-jazzy-lifecycle-msgs==2.0.3',
]

setup(
    name=PACKAGE,
    version=VERSION,
    description='Real-time semantic segmentation (MFARANet) for ROS 2, with a ROS-free core.',
    license='Apache-2.0',
    maintainer='segnode team',
    maintainer_email='segnode@example.com',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['engine/tensorrt/*.txt', 'weights/*.pt']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/config/train', glob('config/train/*.yaml')),
    ],
    python_requires='>=3.10',
    # torch stays out: it comes pinned from the Makefile, pip, or an NGC/JetPack build that
    # pip must never replace (docs/node.md, "Packaging")
    install_requires=['numpy', 'PyYAML', 'opencv-python-headless', 'pillow'],
    extras_require={
        'train': ['tqdm', 'matplotlib'],
        'replay': ['rosbags', 'tqdm', 'matplotlib'],
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
        # OpenVINO's converter and runtime, NNCF for its INT8 (the openvino backend)
        'openvino': ['openvino', 'nncf'],
        'tensorrt': ['torch-tensorrt'],
        'ros': [f'{wheel}; {_ROS_WHEEL_PLATFORM}' for wheel in ROS_WHEELS],
        # colcon test looks for pytest here (setuptools >= 72 warns on `tests_require`).
        'test': ['pytest', 'rosbags', 'rosbags-image'],
        'dev': [
            'pytest',
            'rosbags-image',
            'ruff',
            'mypy',
            'types-PyYAML',
            'types-tqdm',
            'colcon-common-extensions',
            # ament_flake8 and ament_pep257 without ROS: flake8 with ament's plugins, pydocstyle
            'flake8',
            'flake8-blind-except',
            'flake8-builtins',
            'flake8-class-newline',
            'flake8-comprehensions',
            'flake8-deprecated',
            'flake8-docstrings',
            'flake8-import-order',
            'flake8-quotes',
            'pydocstyle',
        ],
    },
    zip_safe=True,
    entry_points={
        'console_scripts': [
            'segnode = segnode.cli:main',
            'segnode_node = segnode.ros.node:main',
        ],
    },
)

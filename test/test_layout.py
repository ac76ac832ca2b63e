"""Packaging and layering checks: the layer table, the ROS-free core, package.xml, setup.py."""

from __future__ import annotations

import ast
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
    'rcl_interfaces',
    'rosidl_runtime_py',
    'builtin_interfaces',
    'sensor_msgs',
    'std_msgs',
    'std_srvs',
    'lifecycle_msgs',
    'vision_msgs',
    'diagnostic_msgs',
    'diagnostic_updater',
    'cv_bridge',
    'launch',
    'launch_ros',
    'launch_testing',
    'launch_testing_ros',
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

# The layers of segnode, lowest first: leaves -> model, data -> engine -> pipeline -> ros, replay,
# train -> cli (README "Layout"). Each unit may import itself and the units listed here, never
# anything else: imports only go down, and neither training nor the engine reaches sideways
# (train uses model and data only; the engine never reads datasets).
LEAVES = frozenset(
    {
        'segnode.version',
        'segnode.cpu',
        'segnode.errors',
        'segnode.config',
        'segnode.files',
        'segnode.metrics',
        'segnode.synthetic',
    }
)
MAY_IMPORT: dict[str, frozenset[str]] = {
    'segnode.version': frozenset(),
    'segnode.cpu': frozenset(),
    'segnode.errors': frozenset(),
    'segnode.config': frozenset({'segnode.errors'}),
    'segnode.files': frozenset({'segnode.errors'}),
    'segnode.metrics': frozenset({'segnode.errors', 'segnode.config', 'segnode.files'}),
    'segnode.synthetic': frozenset({'segnode.errors', 'segnode.config'}),
    'segnode.model': LEAVES,
    'segnode.data': LEAVES,
    'segnode.engine': LEAVES | {'segnode.model'},
    'segnode.pipeline': LEAVES | {'segnode.model', 'segnode.data', 'segnode.engine'},
    'segnode.ros': LEAVES
    | {'segnode.model', 'segnode.data', 'segnode.engine', 'segnode.pipeline'},
    'segnode.replay': LEAVES
    | {'segnode.model', 'segnode.data', 'segnode.engine', 'segnode.pipeline'},
    'segnode.train': LEAVES | {'segnode.model', 'segnode.data'},
    'segnode.cli': LEAVES
    | {
        'segnode.model',
        'segnode.data',
        'segnode.engine',
        'segnode.pipeline',
        'segnode.replay',
        'segnode.train',
    },
}
# Entry points and the package face sit above everything: ``segnode/__init__.py`` (whose
# ``load_model`` imports the model lazily) and ``segnode/__main__.py`` (the CLI). No module
# below imports them (``from segnode import ...`` runs the face; the version is a leaf).
TOP = ('segnode', 'segnode.__main__')
ROOT_MODULES_MAX = 9  # the seven leaves of LEAVES, the face and __main__


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _targets(node: ast.stmt, package: str) -> list[str]:
    """The modules (and ``module.name`` for each imported name) one import statement names.

    A relative import is resolved against ``package``, the package the module sits in.
    """
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ''
    if node.level:
        parts = package.split('.')
        anchor = parts[: len(parts) - node.level + 1]
        base = '.'.join([*anchor, base] if base else anchor)
    return [base] + [f'{base}.{alias.name}' for alias in node.names]


def _package(path: Path, module: str) -> str:
    return module if path.name == '__init__.py' else module.rpartition('.')[0]


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """Every (line, module) imported anywhere in ``path``, lazy imports inside functions too."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    package = _package(path, module)
    return [
        (node.lineno, target)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for target in _targets(node, package)
    ]


def _unit(name: str) -> str | None:
    """The layer table's entry that holds module ``name`` (None: not a segnode module)."""
    for unit in sorted(MAY_IMPORT, key=len, reverse=True):
        if name == unit or name.startswith(unit + '.'):
            return unit
    return None


def _is_face(name: str) -> bool:
    return name in TOP or name.startswith('segnode.__main__.')


def _sources(root: Path = REPO) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted((root / 'segnode').rglob('*.py'))}


def _layer_violations(root: Path) -> list[str]:
    """Imports in the ``segnode`` tree under ``root`` that run up or across the layer table."""
    violations = []
    for module, path in _sources(root).items():
        if module in TOP:
            continue
        unit = _unit(module)
        where = path.relative_to(root)
        if unit is None:
            violations.append(f'{where} has no layer')
            continue
        for line, target in _imports(path, module):
            if target.split('.')[0] in ROS_ONLY and unit != 'segnode.ros':
                violations.append(f'{where}:{line} imports {target} (ROS)')
            elif _is_face(target):
                violations.append(f'{where}:{line} ({unit}) imports the package face {target}')
            elif (other := _unit(target)) is not None and other != unit:
                if other not in MAY_IMPORT[unit]:
                    violations.append(f'{where}:{line} ({unit}) imports {target}')
    return violations


def _import_cycle(root: Path) -> list[str] | None:
    """A circle of module-level imports in the tree under ``root`` (relative ones included).

    Lazy imports inside functions are not followed; None: no circle.
    """
    modules = _sources(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding='utf-8'))
        package = _package(path, module)
        names = [t for node in tree.body for t in _targets(node, package)]
        graph[module] = {n for n in names if n in modules and n != module}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_every_module_has_a_layer_and_the_root_holds_leaves_only() -> None:
    modules = _sources()
    homeless = [m for m in modules if m not in TOP and _unit(m) is None]
    assert not homeless, f'modules outside the layer table: {homeless}'
    root = [p.name for p in (REPO / 'segnode').glob('*.py')]
    assert len(root) <= ROOT_MODULES_MAX, f'{len(root)} modules at the package root: {root}'


def test_imports_only_go_down_the_layers() -> None:
    violations = _layer_violations(REPO)
    assert not violations, 'imports that run up or across a layer:\n' + '\n'.join(violations)


def test_no_import_cycle_between_modules() -> None:
    cycle = _import_cycle(REPO)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle or [])


# A small tree with the shape of segnode, clean as it stands; each check below plants one
# violation in it, to show that the checks above can fail.
FIXTURE_TREE = {
    'segnode/__init__.py': 'from segnode.version import __version__\n\n\ndef load_model(): ...\n',
    'segnode/__main__.py': 'from segnode.cli import main\n',
    'segnode/version.py': "__version__ = '0'\n",
    'segnode/errors.py': '',
    'segnode/config.py': 'from segnode.errors import *\n',
    'segnode/model/__init__.py': '',
    'segnode/model/layers.py': 'from segnode.config import *\n',
    'segnode/data/__init__.py': '',
    'segnode/data/io.py': 'from ..config import *\n',
    'segnode/engine/__init__.py': '',
    'segnode/engine/first.py': 'from segnode.engine import second\nfrom ..model import layers\n',
    'segnode/engine/second.py': 'from segnode.version import __version__\n',
    'segnode/cli/__init__.py': 'from segnode.engine import first\n',
}


def _fixture(root: Path, planted: dict[str, str] | None = None) -> Path:
    """FIXTURE_TREE under ``root``, with the files of ``planted`` (``module`` under segnode/)."""
    files = {**FIXTURE_TREE, **{f'segnode/{k}.py': v for k, v in (planted or {}).items()}}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding='utf-8')
    return root


def test_the_fixture_tree_is_clean(tmp_path: Path) -> None:
    root = _fixture(tmp_path)
    assert _layer_violations(root) == []
    assert _import_cycle(root) is None


@pytest.mark.parametrize(
    ('module', 'text', 'message'),
    [
        ('data/io', 'from segnode import load_model\n', 'imports the package face segnode'),
        ('data/io', 'from .. import load_model\n', 'imports the package face segnode'),
        ('data/io', 'import segnode\n', 'imports the package face segnode'),
        ('model/layers', 'import segnode.__main__\n', 'package face segnode.__main__'),
        ('model/layers', 'def f():\n    from segnode.__main__ import main\n', '__main__'),
        ('model/layers', 'from segnode.engine import first\n', 'imports segnode.engine'),
        ('model/layers', 'from ..engine import first\n', 'imports segnode.engine'),
        ('model/layers', 'from segnode.data import io\n', 'imports segnode.data'),
        ('config', 'import segnode.model.layers\n', 'imports segnode.model'),
        ('engine/second', 'from segnode.cli import main\n', 'imports segnode.cli'),
        ('odd', '', 'has no layer'),
    ],
)
def test_the_layer_check_sees_a_planted_violation(
    tmp_path: Path, module: str, text: str, message: str
) -> None:
    violations = _layer_violations(_fixture(tmp_path, {module: text}))
    assert len(violations) >= 1 and all(message in v for v in violations), violations


@pytest.mark.parametrize('name', ROS_ONLY)
def test_the_layer_check_sees_a_planted_ros_import(tmp_path: Path, name: str) -> None:
    root = _fixture(tmp_path, {'engine/second': f'import {name}.sub\n'})
    assert _layer_violations(root) == [f'segnode/engine/second.py:1 imports {name}.sub (ROS)']


@pytest.mark.parametrize(
    ('first', 'second'),
    [
        ('from segnode.engine import second\n', 'from segnode.engine import first\n'),
        ('from . import second\n', 'from .first import x\n'),
        ('import segnode.engine.second\n', 'from .. import engine\nfrom . import first\n'),
    ],
)
def test_the_circle_check_sees_a_planted_circle(tmp_path: Path, first: str, second: str) -> None:
    root = _fixture(tmp_path, {'engine/first': first, 'engine/second': second})
    cycle = ['segnode.engine.first', 'segnode.engine.second', 'segnode.engine.first']
    assert _import_cycle(root) == cycle


REQUIRED_EXEC_DEPENDS = {
    'rclpy',
    'sensor_msgs',
    'std_msgs',
    'std_srvs',
    'diagnostic_msgs',
    'vision_msgs',
    'lifecycle_msgs',
    'launch',
    'launch_ros',
    'python3-numpy',
    'python3-opencv',
    'python3-pil',
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
    test_depends = {element.text for element in root.iter('test_depend')}
    assert {'python3-pytest', 'cv_bridge'} <= test_depends  # cv_bridge: only the parity test
    assert 'cv_bridge' not in exec_depends  # the node never imports it
    assert 'diagnostic_updater' not in exec_depends  # /diagnostics comes from the node itself


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
    """The version is written in segnode/version.py; setup.py reads it, package.xml repeats it."""
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


def test_the_bundled_model_path_is_package_data(setup_kwargs: dict[str, Any]) -> None:
    from segnode.pipeline.assemble import DEFAULT_CHECKPOINT

    package = Path(segnode.__file__).resolve().parent
    relative = DEFAULT_CHECKPOINT.relative_to(package)
    patterns = setup_kwargs['package_data']['segnode']
    assert any(relative.match(pattern) for pattern in patterns), (relative, patterns)


def test_engine_package_data_is_where_the_code_reads_it(setup_kwargs: dict[str, Any]) -> None:
    from segnode.engine.tensorrt import converters

    table = Path(converters.__file__).with_name(converters.TABLE_FILE)
    relative = table.relative_to(Path(segnode.__file__).resolve().parent)
    assert table.is_file()
    assert any(relative.match(p) for p in setup_kwargs['package_data']['segnode'])


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / 'segnode').rglob('*.py')
        if (n := len(p.read_text(encoding='utf-8').splitlines())) > 450
    }
    assert not long, f'split these modules: {long}'

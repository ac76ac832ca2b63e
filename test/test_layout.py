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

# The layers of segnode, lowest first: leaves -> model, data -> engine -> node -> ros, replay,
# train -> cli (README "Layout"). Each unit may import itself and the units listed here, never
# anything else: imports only go down, and neither training nor the engine reaches sideways
# (train uses model and data only; the engine never reads datasets).
LEAVES = frozenset(
    {'segnode.errors', 'segnode.config', 'segnode.files', 'segnode.metrics', 'segnode.synthetic'}
)
MAY_IMPORT: dict[str, frozenset[str]] = {
    'segnode.errors': frozenset(),
    'segnode.config': frozenset({'segnode.errors'}),
    'segnode.files': frozenset({'segnode.errors'}),
    'segnode.metrics': frozenset({'segnode.errors', 'segnode.config', 'segnode.files'}),
    'segnode.synthetic': frozenset({'segnode.errors', 'segnode.config'}),
    'segnode.model': LEAVES,
    'segnode.data': LEAVES,
    'segnode.engine': LEAVES | {'segnode.model'},
    'segnode.node': LEAVES | {'segnode.model', 'segnode.data', 'segnode.engine'},
    'segnode.ros': LEAVES | {'segnode.model', 'segnode.data', 'segnode.engine', 'segnode.node'},
    'segnode.replay': LEAVES | {'segnode.model', 'segnode.data', 'segnode.engine', 'segnode.node'},
    'segnode.train': LEAVES | {'segnode.model', 'segnode.data'},
    'segnode.cli': LEAVES
    | {
        'segnode.model',
        'segnode.data',
        'segnode.engine',
        'segnode.node',
        'segnode.replay',
        'segnode.train',
    },
}
# Entry points and the package facade sit above everything: ``segnode/__init__.py`` (whose
# ``load_model`` imports the model lazily) and ``segnode/__main__.py`` (the CLI).
TOP = ('segnode', 'segnode.__main__')
ROOT_MODULES_MAX = 8


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """Every (line, module) imported anywhere in ``path``, lazy imports inside functions too."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f'{base}.{alias.name}') for alias in node.names]
    return found


def _unit(name: str) -> str | None:
    """The layer table's entry that holds module ``name`` (None: not a segnode module)."""
    for unit in sorted(MAY_IMPORT, key=len, reverse=True):
        if name == unit or name.startswith(unit + '.'):
            return unit
    return None


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((REPO / 'segnode').rglob('*.py'))}


def test_every_module_has_a_layer_and_the_root_holds_leaves_only() -> None:
    modules = _sources()
    homeless = [m for m in modules if m not in TOP and _unit(m) is None]
    assert not homeless, f'modules outside the layer table: {homeless}'
    root = [p.name for p in (REPO / 'segnode').glob('*.py')]
    assert len(root) <= ROOT_MODULES_MAX, f'{len(root)} modules at the package root: {root}'


def test_imports_only_go_down_the_layers() -> None:
    violations = []
    for module, path in _sources().items():
        if module in TOP:
            continue
        unit = _unit(module)
        assert unit is not None
        for line, target in _imports(path, module):
            if target.split('.')[0] in ROS_ONLY and unit != 'segnode.ros':
                violations.append(f'{path.relative_to(REPO)}:{line} imports {target} (ROS)')
            other = _unit(target)
            if other is None or other == unit:
                continue
            if target == 'segnode' and _imports_version_only(path):
                continue
            if target in TOP or other not in MAY_IMPORT[unit]:
                violations.append(f'{path.relative_to(REPO)}:{line} ({unit}) imports {target}')
    assert not violations, 'imports that run up or across a layer:\n' + '\n'.join(violations)


def _imports_version_only(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding='utf-8'))
    return all(
        {a.name for a in node.names} <= {'__version__'}
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == 'segnode' and not node.level
    )


def test_no_import_cycle_between_modules() -> None:
    """Module-level imports form no circle (lazy imports inside functions are not followed)."""
    modules = _sources()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding='utf-8'))
        targets = set()
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
            targets |= {n for n in names if n in modules and n != module}
        graph[module] = targets
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


REQUIRED_EXEC_DEPENDS = {
    'rclpy',
    'sensor_msgs',
    'std_msgs',
    'std_srvs',
    'diagnostic_msgs',
    'diagnostic_updater',
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


def test_the_bundled_model_path_is_package_data(setup_kwargs: dict[str, Any]) -> None:
    from segnode.node.assemble import DEFAULT_CHECKPOINT

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

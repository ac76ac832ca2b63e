# segnode developer entry points. `make demo` sets everything up; `make test` is what CI runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: an unpinned torch pulls gigabytes of CUDA wheels.
# Override for another build, e.g. TORCH_SPEC='--index-url https://download.pytorch.org/whl/cpu
# torch==2.13.0' where no local CPU wheel is configured.
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS := requirements/constraints.txt
EXTRAS := dev,train,replay,onnx,openvino
PYTEST_MARKERS ?= not gpu and not ros and not slow
LINT_PATHS := $(wildcard segnode test launch bench) setup.py
# A sourced ROS 2 shell: ROS_DISTRO comes from ros_environment, AMENT_PREFIX_PATH from any
# setup.bash (a workspace built without ros_environment sets only that).
ROS_SHELL := $(or $(ROS_DISTRO),$(AMENT_PREFIX_PATH))
# There the venv must see the system's site-packages: rclpy comes from the ROS install, and
# launch / launch_testing need Python packages the distribution installs (lark, osrf_pycommon,
# ...). The venv's own pins (pytest among them) still win.
VENV_FLAGS := $(if $(ROS_SHELL),--system-site-packages,)
# ... with numpy and OpenCV pinned to what the distribution's packages were built for
# (requirements/constraints-ros.txt says why), and empy left to ROS (Humble's rosidl needs 3.x).
ROS_CONSTRAINTS := requirements/constraints-ros.txt
PIP_CONSTRAINTS := $(if $(ROS_SHELL),$(VENV)/constraints.txt,$(CONSTRAINTS))
# Outside ROS, the node's ROS tests run against the pinned ROS 2 Jazzy wheels (real rclpy and
# Fast DDS) in an environment of their own, so that .venv stays a ROS-free one.
ROS_VENV := .venv-ros
ROS_PYTHON := $(if $(ROS_SHELL),$(BIN)/python,$(ROS_VENV)/bin/python)

# Humble's Python (3.10) and Jazzy's (3.12), where this machine has them (pyenv or PATH).
OTHER_PYTHONS := $(foreach v,3.10 3.12,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python) \
    $(shell command -v python$(v) 2>/dev/null)))

.PHONY: venv venv-check demo test lint typecheck pytest ros-test pythons colcon-check format clean

$(VENV)/.installed: setup.py $(CONSTRAINTS) $(ROS_CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(if $(ROS_SHELL),grep -v -E '^(numpy|opencv-python-headless|ml_dtypes|empy)==' $(CONSTRAINTS) \
	    | cat - $(ROS_CONSTRAINTS) > $(PIP_CONSTRAINTS))
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c $(PIP_CONSTRAINTS) $(TORCH_SPEC)
	$(BIN)/python -m pip install -c $(PIP_CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

$(ROS_VENV)/.installed: setup.py $(CONSTRAINTS)
	test -x $(ROS_VENV)/bin/python || $(PYTHON) -m venv $(ROS_VENV)
	$(ROS_VENV)/bin/python -m pip install --upgrade pip
	$(ROS_VENV)/bin/python -m pip install -c $(CONSTRAINTS) $(TORCH_SPEC)
	$(ROS_VENV)/bin/python -m pip install -c $(CONSTRAINTS) -e '.[ros,test]'
	touch $@

# A venv made before ROS was sourced cannot import launch_testing's dependencies there.
venv-check: $(VENV)/.installed
	@if [[ -n "$(ROS_SHELL)" ]] && grep -qi '^include-system-site-packages *= *false' \
	    $(VENV)/pyvenv.cfg; then \
	  echo "make: $(VENV) was made outside a ROS shell and cannot see ROS's Python packages;" \
	    "remove it (rm -rf $(VENV)) and run make again in this shell" >&2; exit 1; fi

demo: $(VENV)/.installed
	$(BIN)/segnode demo

# Sequential on purpose (even under -j); the first failing step fails `make test`.
test: $(VENV)/.installed
	$(MAKE) --no-print-directory venv-check
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory pytest
	$(MAKE) --no-print-directory ros-test
	$(MAKE) --no-print-directory pythons
	$(MAKE) --no-print-directory colcon-check

# ruff, then ament's two linters as colcon test runs them on a ROS machine (ament_flake8 with
# setup.cfg, ament_pep257's pydocstyle arguments from test/test_pep257.py), so that neither
# can fail there first.
lint: $(VENV)/.installed
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/flake8 --config setup.cfg $(LINT_PATHS)
	$(BIN)/pydocstyle --match='.*\.py' --convention=google \
	    --add-ignore=D100,D101,D102,D103,D104,D105,D106,D107 $(LINT_PATHS)

# The types are checked against constraints.txt's numpy 2 and OpenCV 5 stubs; a ROS shell's
# venv has numpy 1.26 and OpenCV 4.10, whose stubs type the same code differently.
typecheck: $(VENV)/.installed
ifneq ($(ROS_SHELL),)
	@echo 'typecheck: skipped in a sourced ROS shell: mypy checks against the numpy 2 and' \
	    'OpenCV 5 of requirements/constraints.txt; this venv has constraints-ros.txt' \
	    '(run make typecheck outside ROS)'
else
	$(BIN)/mypy
endif

# Data tests are selected: they skip themselves when SEGNODE_CAMVID_ROOT is unset.
pytest: $(VENV)/.installed
	$(BIN)/python -m pytest -m "$(PYTEST_MARKERS)"

# The node on real rclpy: the distribution's in a sourced ROS shell, else the wheels in
# .venv-ros. test/ros/conftest.py isolates each run (a ROS_DOMAIN_ID of its own, localhost).
ros-test: $(if $(ROS_SHELL),$(VENV)/.installed,$(ROS_VENV)/.installed)
	$(ROS_PYTHON) -m pytest -m ros test/ros

# What can be checked on Python 3.10 and 3.12 without a second torch (3 GB of CUDA wheels for
# 3.10: torch's CPU build for it is not on PyPI): every file compiles, and the pinned install
# (ROS wheels included) resolves. The whole suite ran on 3.10 once by hand (docs/node.md).
pythons:
	@if [[ -z "$(strip $(OTHER_PYTHONS))" ]]; then \
	  echo 'pythons: skipped: no python3.10 or python3.12 on this machine'; fi
	@for py in $(OTHER_PYTHONS); do \
	  echo "pythons: $$($$py --version): compileall, pip install --dry-run -c $(CONSTRAINTS)"; \
	  $$py -m compileall -q segnode test launch setup.py >/dev/null; \
	  $$py -m pip install --dry-run --ignore-installed --quiet --disable-pip-version-check \
	    -c $(CONSTRAINTS) -e '.[$(EXTRAS),ros]' $(TORCH_SPEC) 2>&1 \
	    | { grep -v '^WARNING: Location' || true; }; \
	done

colcon-check: $(VENV)/.installed
	BIN="$(abspath $(BIN))" bash .ci/colcon_check.sh

format: $(VENV)/.installed
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

# Removes build outputs and caches; keeps .venv (delete it by hand to start over).
clean:
	rm -rf build install log .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

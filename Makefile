# Two commands a newcomer needs: `make demo` and `make test`. Both build the same local venv first.
# torch==2.13.0 is installed before anything that depends on it: otherwise pip pulls a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
# The real ROS 2 command line (ros2 launch/run/param/topic/lifecycle, launch, launch_ros), built unchanged
# from upstream: no wheels for it exist on PyPI. Installed when present; tests that need it fail in CI.
ROS2_CLI ?= ../shared/ros2-cli/install.sh
# tf2_ros, tf2_msgs and vision_msgs (the ground projection's pose and LabelInfo), likewise built from upstream.
ROS2_EXTRA ?= ../shared/ros2-extra/install.sh
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv test test-fast lint demo constraints clean

$(VENV)/.deps: setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install --quiet -c $(CONSTRAINTS) ".[test]"
	if [ -f $(ROS2_CLI) ]; then PIP_CONSTRAINT=$(abspath $(CONSTRAINTS)) bash $(ROS2_CLI) $(PY); \
	else echo "note: $(ROS2_CLI) not found: the ros2 command-line tests will skip (fail under CI=true)"; fi
	if [ -f $(ROS2_EXTRA) ]; then bash $(ROS2_EXTRA) $(PY); \
	else echo "note: $(ROS2_EXTRA) not found: the tf2 ground tests will skip (fail under CI=true)"; fi
	touch $@

# The project itself is reinstalled every time (seconds): the ament-index layout under the venv prefix
# (lib/<pkg>/, share/) must match the tree the tests run against. `source $(VENV)/bin/activate` then readies a
# shell for fast-scnn, ros2 run and ros2 launch (activate_ament.sh adds AMENT_PREFIX_PATH to it, once).
venv: $(VENV)/.deps
	$(PIP) install --quiet --no-deps --no-build-isolation --force-reinstall --no-compile .
	sh requirements/activate_ament.sh $(VENV)

# Everything (what CI runs); the 25 slowest tests are listed at the end.
test: lint
	$(PY) -m pytest --durations=25

# The unit tier: no node process or ros2 command, no subprocess, no training run (the markers are in
# pyproject.toml); a few minutes on 2 cores.
test-fast: lint
	$(PY) -m pytest -m "not ros_process and not cli and not training"

# ruff, and the layer rule of README "Architecture" (import-linter; contracts in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

constraints: $(VENV)/.deps
	( echo "# Exact versions CI and the README install with (pip -c). Regenerate after a deliberate upgrade:"; \
	  echo "#   make constraints"; \
	  $(PIP) freeze --exclude-editable | grep -v -E '^(fast.scnn.ros|pip|setuptools|wheel)[=@ ]| @ file:' | sed 's/+cpu$$//' ) > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) build *.egg-info

# The newcomer's demo: synthetic data, a few minutes of training, the real node, a camera and a planner.
demo: venv
	$(PY) -m fast_scnn_ros.tools.demo --out demo
	@echo "Your shell, ready for fast-scnn, ros2 run and ros2 launch:  source $(VENV)/bin/activate"

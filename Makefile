# salesops — two commands: `make run` and `make test`. Both work on a fresh machine
# with nothing but Python 3.11 and make: they bootstrap uv into .tools/ and sync .venv.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: run test lint bench soak demo install clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --compile-bytecode: once at install, so that each service process and test worker does not
# compile its libraries again (with PYTHONDONTWRITEBYTECODE set, as here, it would every time).
$(VENV)/.synced: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

install: $(VENV)/.synced

run: install
	$(VENV)/bin/salesops up

demo: install
	$(VENV)/bin/salesops demo

# In 4 processes (addopts in pyproject.toml); one file serially:
#   make test PYTEST_ARGS="-n 0 tests/routing/unit/test_roster.py"
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs services

bench: install
	$(PY) -m bench $(BENCH_ARGS)

# A 20-minute mixed load on the whole stack (bench/soak.py); a short one:
#   make soak SOAK_ARGS="--minutes 3"
soak: install
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS)

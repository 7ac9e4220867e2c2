# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format install clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU wheel; any open torch range would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# Ray (the optional extra) is installed too, so that the tests exercise it; neither it nor pymoo
	# requires torch, so the pin above stands.
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@bash scripts/demo.sh $(VENV)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p build/mypy && ln -sfn ../.. build/mypy/approxlut
	cd build/mypy && ../../$(VENV)/bin/mypy -p approxlut

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache

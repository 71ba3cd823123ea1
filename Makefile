# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv and installs what it needs from the lock file: exact versions
# with their hashes (`pip install --require-hashes`), then failover itself without dependencies.
# pyproject.toml keeps lower bounds for those who install failover as a library.
#
# The lock: requirements.lock, every package of the runtime and the `dev` and `sandbox` extras,
# resolved for Python 3.11 on Linux x86_64. After changing a dependency in pyproject.toml, run
# `make lock` to regenerate it (pins that still fit are kept; `make lock LOCK_FLAGS=--upgrade`
# moves every package to its newest release), then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
LOCK_TOOL := uv==0.13.9
LOCK_FLAGS ?=
# root runs apt-get itself; anyone else through sudo, where there is one
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null || echo sudo)

.PHONY: demo test lint typecheck unit bench docs clean lock test-tools

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The lock is made by uv's resolver, installed in a throwaway virtual environment.
lock:
	@tool=$$(mktemp -d) && trap 'rm -rf "$$tool"' EXIT && \
	$(PYTHON) -m venv "$$tool" && \
	"$$tool/bin/python" -m pip install --quiet $(LOCK_TOOL) && \
	"$$tool/bin/uv" pip compile pyproject.toml --extra dev --extra sandbox --generate-hashes \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--custom-compile-command "make lock" --quiet $(LOCK_FLAGS) --output-file $(LOCK)

# Programs the tests run besides Python: ssh-keygen (Debian's openssh-client), a headless
# browser that draws the HTML report (Debian's chromium) and a Prometheus server that the
# prometheus.query check asks (Debian's prometheus, without the exporters it recommends). Where
# chromium or prometheus cannot be installed, the tests that need it skip, naming it, unless CI=true.
test-tools:
	@command -v ssh-keygen >/dev/null || ( $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-client )
	@command -v chromium >/dev/null || ( $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium ) || \
		echo "chromium could not be installed: the HTML report's browser tests will skip"
	@command -v prometheus >/dev/null || ( $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus ) || \
		echo "prometheus could not be installed: the tests of the prometheus.query check will skip"

DEMO := runbooks/shop.yaml

# The reference drill: the shop fails over from east to west and back, on an embedded AWS (moto)
# and GCP (a Compute Engine fake); the Markdown report goes to drill-report.md. The lock holds the
# `sandbox` extra (moto's server) that --sandbox needs.
demo: $(STAMP)
	$(BIN)/failover validate $(DEMO)
	$(BIN)/failover plan $(DEMO) --from east --to west --format markdown -o shop-plan.md --summary
	$(BIN)/failover drill $(DEMO) --from east --to west --failback --sandbox --auto-approve --report drill-report.md
	@echo "drill report: drill-report.md"

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP) test-tools
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/plan_scale.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

docs: $(STAMP)
	FAILOVER_WRITE_DOCS=1 $(BIN)/pytest -q tests/test_docs.py -k cli_reference

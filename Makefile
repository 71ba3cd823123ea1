# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates or refreshes .venv and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO := runbooks/shop.yaml

# The reference drill: the shop fails over from east to west and back, on an embedded AWS (moto)
# and GCP (a Compute Engine fake); the Markdown report goes to drill-report.md.
demo: $(STAMP)
	$(BIN)/failover validate $(DEMO)
	$(BIN)/failover plan $(DEMO) --from east --to west
	$(BIN)/failover drill $(DEMO) --from east --to west --failback --sandbox --auto-approve --report drill-report.md
	@echo "drill report: drill-report.md"

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/plan_scale.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis

docs: $(STAMP)
	FAILOVER_WRITE_DOCS=1 $(BIN)/pytest -q tests/test_docs.py -k cli_reference

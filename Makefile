# The few commands people run. `make demo` and `make test` work from a fresh clone with only
# Python 3.11+ and make: everything else is installed into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := plugins/shopify plugins/woocommerce plugins/bigcommerce
# Test processes for `make test` (pytest-xdist; each file stays in one process). JOBS=0 runs serially;
# ARGS adds pytest arguments (`make test ARGS="-k webhook"`).
JOBS ?= 2
PYTEST_ARGS ?= $(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist loadfile)

.PHONY: demo test test-faults lint bench install schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(BIN)/pip install --quiet -e '.[test,embedded]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/alana-gateway demo

LINTED := gateway plugins tests benchmarks
TYPED := gateway $(foreach p,$(PLUGINS),$(filter-out %.egg-info,$(wildcard $(p)/alana_*)))

lint: $(STAMP)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/mypy $(TYPED)

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS) $(ARGS)

# The fault matrix on the multi-process rig (tests/test_faults.py): kill -9, Valkey and MongoDB
# outages, a failing store. Minutes of two cores, so `make test` skips it.
test-faults: $(STAMP)
	ALANA_FAULT_MATRIX=1 $(BIN)/python -m pytest tests/test_faults.py $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

schema: $(STAMP)
	$(BIN)/alana-gateway export-schema > schema.graphql

clean:
	rm -rf $(VENV) .gateway .pytest_cache .mypy_cache .ruff_cache

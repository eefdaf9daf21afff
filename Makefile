# zhixin — the two commands a newcomer needs are `make serve` and `make test`.
# Both bootstrap .venv (pinned Python deps) and node_modules (npm ci) idempotently.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
PORT ?= 8000
export ETH_HASH_BACKEND ?= pysha3

.PHONY: serve test lint fmt compile bootstrap clean-data bench

bootstrap: $(VENV)/.stamp node_modules/.stamp

$(VENV)/.stamp: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: bootstrap
	$(BIN)/zhixin serve --data-dir $(DATA_DIR) --port $(PORT) --dev

test: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	npx --no-install solhint --noPoster 'contracts/src/**/*.sol' > /dev/null
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	npx --no-install solhint 'contracts/src/**/*.sol'

fmt: bootstrap
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

compile: bootstrap
	$(BIN)/python -m ledger.contracts compile

clean-data:
	rm -rf $(DATA_DIR)

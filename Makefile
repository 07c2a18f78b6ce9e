# kyso — the two commands: `make run` and `make test`.
.PHONY: run test bench lint protos install install-test clean

VENV := .venv
BIN := $(VENV)/bin
DEV_HOME ?= var/dev

run: install
	$(BIN)/kyso dev init --home $(DEV_HOME)
	$(BIN)/kyso dev serve --home $(DEV_HOME)

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

bench: install-test
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

protos: install
	$(BIN)/python scripts/gen_protos.py

install:
	@scripts/bootstrap.sh run

install-test:
	@scripts/bootstrap.sh test

clean:
	rm -rf var build .mypy_cache .ruff_cache .pytest_cache

# kyso — the two commands: `make run` and `make test`.
.PHONY: run test test-loaded bench soak lint protos install install-test clean

VENV := .venv
# The suite starts well over a thousand interpreters (servers, CLI calls, workers); without
# cached bytecode each compiles kyso's 150 modules again (0.25 s of CPU), and pytest rewrites
# every test module in every worker. So bytecode is written here whatever the shell says.
unexport PYTHONDONTWRITEBYTECODE
BIN := $(VENV)/bin
DEV_HOME ?= var/dev

run: install
	$(BIN)/kyso dev init --home $(DEV_HOME)
	$(BIN)/kyso dev serve --home $(DEV_HOME)

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
	@# the modules that read the calendar, once more with the clock a year ahead
	scripts/test-under.sh future $(CLOCK_TESTS)

# Test processes (pytest-xdist). A file's tests stay in one process, so module-scoped servers
# start once; most of the suite waits on child processes, so two processes overlap well even
# on two cores. `make test TEST_WORKERS=0` runs everything in one process.
TEST_WORKERS ?= auto

# Modules whose results depend on the date (certificates, sessions, heads, time-stamps, leases).
# Not the whole suite: under libfaketime the kernel's file times stay real (the reconcile's
# "old enough" objects), Ceph's daemons do not start, and timed waits on condition variables
# misbehave (watchdog and heartbeat tests) — none of them reads the calendar.
CLOCK_TESTS := tests/audit/test_heads.py tests/audit/test_outbox.py tests/dev/test_pki.py \
	tests/twophase/test_sessions.py tests/twophase/test_refusals.py tests/exchange/test_routing.py \
	tests/exchange/test_edxml_signature.py tests/verify/test_levels.py tests/signer/test_bad_input.py \
	tests/kyso/test_archive.py::test_renewed_document_verifies_after_the_old_tsa_expired \
	tests/kyso/test_archive.py::test_a_pdf_received_through_the_exchange_is_renewed

# The whole suite on a machine with one core kept busy.
test-loaded: install-test
	scripts/test-under.sh loaded

bench: install-test
	$(BIN)/python -m bench

# Legitimate clients beside hostile ones, about 3 minutes (docs/operations.md, "Soak test").
soak: install-test
	$(BIN)/python -m bench soak

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

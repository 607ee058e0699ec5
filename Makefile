# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install broker postgres test clock-check faults lint demo observe sandbox clean bench-install \
	bench bench-quick fuzz-install fuzz soak

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# A broker that answers: AMQP_URL, the local node, or start/install Debian's (see README).
broker: install
	$(BIN)/backbone broker ensure --install --plugins

# The PostgreSQL the store tests use (VDX_TEST_POSTGRES_URL, or the local one).
postgres:
	scripts/ensure-postgres

# Three workers (pytest-xdist): the tests mostly wait on the broker, the database and child
# processes, so three share two cores well; each test has its own prefix, schema and ports.
# The tests that boot throwaway RabbitMQ nodes share one worker (xdist_group rabbitmq_nodes).
test: install broker postgres
	$(BIN)/pytest -n 3 --dist loadgroup

# The tests marked `clock` again at 16:59, 17:01 and 23:59 UTC with TZ=UTC and
# TZ=Asia/Ho_Chi_Minh (libfaketime); fails if any outcome differs from the normal run.
clock-check: install broker postgres
	$(BIN)/python scripts/clock-check

# The fault scenarios (tests/faults/README.md): thousands of documents through killed routers,
# a restarted broker, a cut network, a poison message, a full disk and a cluster losing a node.
faults: install broker postgres
	$(BIN)/pytest tests/faults -m faults -p no:cacheprovider

lint: install
	$(BIN)/ruff check backbone adapters testkit tests bench scripts/clock-check
	$(BIN)/ruff format --check backbone adapters testkit tests scripts/clock-check
	$(BIN)/mypy
	$(BIN)/lint-imports
	@# The alert rules (Debian's prometheus package; .ci/run installs it, CI=true requires it).
	@if command -v promtool >/dev/null; then promtool check rules deploy/prometheus/alerts.yml; \
	elif [ "$$CI" = true ]; then echo "promtool is missing (apt-get install prometheus)" >&2; exit 1; \
	else echo "skipped: promtool check rules (apt-get install prometheus)" >&2; fi

demo: install broker
	$(BIN)/backbone demo

# The demo with Debian's Prometheus beside it (apt-get install prometheus), until Ctrl-C.
observe: install broker
	$(BIN)/backbone demo --observe

# Gateways for a handful of agencies across the four tiers, until Ctrl-C: $(SANDBOX)/sandbox.json
# says how an agency's software reaches them (README, "Trying your software against the sandbox").
SANDBOX ?= sandbox

sandbox: install broker
	$(BIN)/backbone sandbox --out $(SANDBOX)

# The benchmark (bench/README.md): writes bench/results.json, report.md, latency.png.
bench-install: install
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'

bench: bench-install broker
	$(BIN)/python -m bench

bench-quick: bench-install broker
	$(BIN)/python -m bench --quick

# The soak (tests/soak/README.md): SOAK_MINUTES of steady mixed traffic through a real router
# and drop-folder adapters, one router kill and one broker cut; writes tests/soak/report.md and
# soak.png, fails if a measure keeps growing or anything is lost. Not part of CI.
SOAK_MINUTES ?= 30

soak: bench-install broker
	$(BIN)/python -m tests.soak --minutes $(SOAK_MINUTES)

# Coverage-guided fuzzing (tests/fuzz/README.md): each reader of untrusted bytes for
# FUZZ_SECONDS, writes tests/fuzz/report.md, fails on any finding. Not part of CI.
FUZZ_SECONDS ?= 120

fuzz-install: install
	$(BIN)/python -m pip install --quiet -e '.[test,fuzz]'

fuzz: fuzz-install
	$(BIN)/python -m tests.fuzz --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info

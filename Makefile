# nats-chaos — `make chaos` runs the scenarios, `make test` the harness's own tests.
# Both bootstrap what they need (`make setup`) on a fresh machine.
PY      := .venv/bin/python
HARNESS := .venv/bin/harness
ENV     ?= local
ARGS    ?=

.PHONY: setup chaos test bench env-up clean

setup:
	@bash scripts/setup.sh

chaos: setup
	$(HARNESS) run --env $(ENV) $(ARGS)

test: setup
	$(PY) -m pytest tests $(ARGS)

bench: setup
	$(PY) bench/run.py $(ARGS)

env-up: setup
	$(HARNESS) env up

clean:
	rm -rf .venv .bin reports/*/ reports/latest
-include compose/compose.mk

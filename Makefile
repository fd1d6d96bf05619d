# nats-chaos — `make chaos` runs the scenarios, `make test` the harness's own tests.
# Both bootstrap what they need (`make setup`) on a fresh machine.
PY      := .venv/bin/python
HARNESS := .venv/bin/harness
ENV     ?= local
# scenarios in flight (pytest-xdist workers, one environment each): auto = chosen from the machine
# (harness/schedule.py: cores, memory, fds, ports); N=4 sets it; N=0 runs them in-process
N       ?= auto
ARGS    ?=

.PHONY: setup chaos chaos-quick soak gate test test-releases lint bench env-up clean

setup:
	@bash scripts/setup.sh

# make turns any failing recipe into its own status 2; the harness's status is printed.
chaos: setup
	@$(HARNESS) run --env $(ENV) -n $(N) $(ARGS) || { s=$$?; \
	  echo "harness run exited $$s (0 clean, 1 findings, 2 usage or environment error)"; exit $$s; }

# The quick selection: the entries tagged `quick` in scenarios/ (README: "The default suite").
chaos-quick: setup
	@$(HARNESS) run --env $(ENV) -n $(N) -m quick $(ARGS) || { s=$$?; \
	  echo "harness run exited $$s (0 clean, 1 findings, 2 usage or environment error)"; exit $$s; }

# Soak scenarios (scenarios/soak/: not collected by `make chaos`): each flow repeated for its
# `rounds`, memory sampled per round; ARGS='--soak 600' runs each for ten minutes instead.
soak: setup
	@$(HARNESS) run --env $(ENV) scenarios/soak/*.yaml $(ARGS) || { s=$$?; \
	  echo "harness run exited $$s (0 clean, 1 findings, 2 usage or environment error)"; exit $$s; }

# The pre-release gate: run, rerun what did not pass, judge against known_issues/known_issues.yaml.
gate: setup
	@$(HARNESS) gate --env $(ENV) -n $(N) $(ARGS) || { s=$$?; \
	  echo "harness gate exited $$s (0 every finding known, 1 new/stale/flaky/inconclusive, 2 usage or environment error)"; exit $$s; }

test: setup
	$(PY) -m pytest tests -m "not releases" $(ARGS)

# Every published nats-py release as a target (each flow's control passes or is not applicable).
test-releases: setup
	$(PY) -m pytest tests -m releases $(ARGS)

# actionlint (built with go install into .bin/) over .github/workflows/.
lint:
	@bash scripts/lint.sh

bench: setup
	$(PY) bench/run.py $(ARGS)

env-up: setup
	$(HARNESS) env up

clean:
	rm -rf .venv .bin .cache reports/*/ reports/latest
-include compose/compose.mk

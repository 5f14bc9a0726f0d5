# The two commands of the README: `make demo` and `make test`
# (`make demo-full` reproduces the docs' tables).
# Both first run tools/setup_env.sh, which builds .venv once and then skips
# every finished step.
PYTHON := .venv/bin/python

.PHONY: setup demo demo-full test benchmarks clean-venv

setup:
	bash tools/setup_env.sh

# The quick run (about 30 minutes on 2 cores): every method end to end,
# shorter trainings, clearly labelled as such.
demo: setup
	$(PYTHON) tools/demo.py

# The full run the docs' tables come from (about 3 to 3.5 hours on 2 cores from
# scratch; finished trainings are reused).
demo-full: setup
	$(PYTHON) tools/demo.py --full

test: setup
	$(PYTHON) -m pytest -q tests

# Every measurement of docs/benchmarks.md (after `make demo-full`; takes a
# while: run it on a quiet machine).
benchmarks: setup
	bash tools/run_benchmarks.sh

clean-venv:
	rm -rf .venv

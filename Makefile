# The two commands of the README: `make demo` and `make test`.
# Both first run tools/setup_env.sh, which builds .venv once and then skips
# every finished step.
PYTHON := .venv/bin/python

.PHONY: setup demo test benchmarks clean-venv

setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/demo.py

test: setup
	$(PYTHON) -m pytest -q tests

# Every measurement of docs/benchmarks.md (after `make demo`; takes a
# while: run it on a quiet machine).
benchmarks: setup
	bash tools/run_benchmarks.sh

clean-venv:
	rm -rf .venv

# The two commands of the README: `make demo` and `make test`.
# Both first run tools/setup_env.sh, which builds .venv once and then skips
# every finished step.
PYTHON := .venv/bin/python

.PHONY: setup demo test clean-venv

setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON) tools/demo.py

test: setup
	$(PYTHON) -m pytest -q tests

clean-venv:
	rm -rf .venv

# pose_ros -- every target first runs the one idempotent environment step.
SHELL := /bin/bash
RUN := scripts/run.sh
PYTEST_ARGS ?=

.PHONY: env demo test lint bench clean help

help:
	@echo "make demo   - run the demo (creates the environment on first use)"
	@echo "make test   - lint + the whole test suite over loopback DDS"
	@echo "make bench  - benchmarks (tables of medians and ratios)"
	@echo "make lint   - ruff (target py310)"
	@echo "make clean  - remove build/, install/ and the .venv link"

env:
	@bash scripts/setup_env.sh

demo: env
	@$(RUN) python -m pose_ros.ros.demo_run --out out

lint: env
	@$(RUN) ruff check .

test: env lint
	@$(RUN) pytest test $(PYTEST_ARGS)

bench: env
	@$(RUN) python benchmarks/run_all.py

clean:
	rm -rf build install log .venv

.PHONY: install lint test demo bench all

install:
	pip install -e '.[test]'

lint:
	ruff check orchestrator workers tests bench
	ruff format --check orchestrator workers
	mypy
	lint-imports
	pytest -q tests/unit/test_house.py

test:
	pytest -q

demo:
	orchestrator demo

bench:
	python -m bench --quick

all: lint test

# make demo: set up everything, then run the demo on the bundled elpv data.
# make test: set up everything, then run the whole test suite (what CI runs).
.PHONY: setup demo test bench

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

demo: setup
	.venv/bin/teachset demo

test: setup
	bash scripts/study_system_deps.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider

bench: setup
	.venv/bin/python benchmarks/bench_foundation.py
	.venv/bin/python benchmarks/bench_generator.py
	.venv/bin/python benchmarks/bench_teacher.py

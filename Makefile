# facegraph: `make demo` and `make test` work on a fresh clone (they create .venv first).
# Installs go through constraints.txt, which pins torch to the local CPU wheel: an unpinned torch
# would pull several GB of CUDA builds on a CPU machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint docs benchmarks clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,train,export,docs,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/facegraph demo --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# With ../shared beside the checkout, the BFM's dense bases are fetched once into a cache outside the
# repository, so the tests of the real BFM run (they skip, saying why, when the bases are absent).
BFM_BASES := ../shared/tools/get-bfm-bases

test: lint docs
	@if [ -x $(BFM_BASES) ]; then $(BFM_BASES) > /dev/null || echo "no dense BFM bases: their tests skip"; fi
	$(BIN)/pytest -q

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/harness.py
	$(BIN)/python benchmarks/synergynet.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache

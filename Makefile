# Two commands for a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean bytecode

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "numa-emu needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,plots]'
	@touch $@

# Daemons start faster from bytecode; compile it even where PYTHONDONTWRITEBYTECODE is set
# (it only stops Python from writing .pyc files, not from using them). Incremental.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q protocol nodes coordinator numa_emu sim topologies experiments >/dev/null

demo: bytecode
	$(BIN)/python -m numa_emu.demo

test: bytecode
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest -q

bench: bytecode
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info

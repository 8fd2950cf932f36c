# Two commands do everything on a fresh machine:  make demo  and  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is pinned to the CPU build that lies on this machine's disk (a looser pin pulls a CUDA build);
# on a GPU machine: make setup TORCH=torch  (PyPI's default build, CUDA on Linux), or name a wheel index:
#   make setup TORCH="torch --index-url https://download.pytorch.org/whl/cu126"
# (the value reaches the shell unquoted: write a version range as TORCH="'torch>=2.3'")
TORCH  ?= torch==2.13.0

.PHONY: setup demo test notebooks clean

$(BIN)/attnkit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/attnkit

demo: setup
	$(BIN)/attnkit demo

test: setup
	$(BIN)/python -m pytest

# every notebook of the course (notebooks/), English and Russian, run at full budget, outputs kept
notebooks: setup
	$(BIN)/python notebooks/build_notebooks.py --execute

clean:
	rm -rf $(VENV) runs .pytest_cache

# The two commands of the README contract:
#   make demo  — create .venv, install, run the main job (catalogue proofs, normal forms)
#   make test  — create .venv, install with test extras, run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# --no-compile: no bytecode for every file of every package at install (most of torch's and TensorFlow's
# install time); Python compiles what is imported, once, on first import
INSTALL := $(PIP) install -q --no-compile
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(INSTALL) -e ".[test,codegen,plot]"
	# PyTorch is an optional oracle: the CPU build 2.13.0 installs from a local file on these machines;
	# when it cannot be had, the torch tests skip and everything else still runs.
	$(INSTALL) "torch==2.13.0" || echo "note: torch==2.13.0 not installable here; torch oracle tests will skip"
	# TensorFlow and JAX (CPU) are optional oracles too: their tests skip where they cannot be installed
	$(INSTALL) "tensorflow-cpu>=2.16" "jax>=0.10" || echo "note: tensorflow-cpu / jax not installable here; their oracle tests will skip"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(PY) -m symdeconv.demo

test: venv
	NUMBA_ENABLE_CUDASIM=1 TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu $(PY) -m pytest -n 2 tests

bench: venv
	$(PY) benchmarks/bench_normal_form.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_kernels.py --allocator reuse
	$(PY) benchmarks/bench_latency.py
	$(PY) benchmarks/bench_signal.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .cache

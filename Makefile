# Two commands do all the set-up on a fresh machine:
#   make demo   # virtual environment + install + the main job on built-in data (no downloads)
#   make test   # virtual environment + install + the whole test suite
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.symtrain-installed

.PHONY: install demo test bench docs figures lint numpy2 clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[escnn,test,physics,ray,scaling,egnn,digits,graphs,docs,lint]"
	# escnn requires py3nj, which needs a Fortran compiler to build. escnn runs without it
	# (numerical Clebsch-Gordan fallback), so install escnn without its declared
	# dependencies (the real ones come with the [escnn] extra above) and add py3nj only
	# where gfortran exists.
	$(PIP) install --no-deps "escnn==1.0.11"
	if command -v gfortran >/dev/null 2>&1; then $(PIP) install py3nj || echo "py3nj failed to build; escnn will use its fallback"; fi
	$(PY) -c "import symtrain, escnn, torch_geometric, timm, accelerate, mujoco, ray, scipy, egnn_pytorch, sklearn"
	touch $(STAMP)

# The main job: wrap non-equivariant models and print their equivariance error (seconds),
# then a short n-body training run on CPU: plain vs augmented vs PS transformer (a few minutes).
demo: install
	$(PY) -m symtrain demo

test: install
	$(PY) -m pytest

bench: install
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# The documentation site (mkdocs-material + mkdocstrings, offline) into site/; --strict
# turns every warning (a broken link, a missing page or snippet) into an error.
docs: install
	$(VENV)/bin/mkdocs build --strict

# The figures of the pages (docs/img/*.png, committed; about 10 s).
figures: install
	$(PY) docs/figures.py

# ruff over the whole tree, mypy over the public modules (both configured in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The core package (no extras) with numpy 2 in a fresh environment, and a smoke test.
numpy2:
	.ci/numpy2_core.sh

clean:
	rm -rf $(VENV) .venv-numpy2 site build *.egg-info .pytest_cache

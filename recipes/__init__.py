"""Recipes: each rebuilds a family of the files shipped in ``imgsearch/pretrained/`` and
``imgsearch/data/`` from ``../shared`` and writes its provenance beside them (``provenance.py``).

    python -m recipes                      # every recipe, in RECIPES order (make artifacts)
    python -m recipes trust fusion         # some (make artifacts ONLY="trust fusion")
    python -m recipes --list               # what each makes, and roughly what it costs

``bench/`` measures; only recipes write shipped files. The code reads every fitted number from
the files (no fitted number is typed into ``imgsearch/``).
"""

"""Search: a query becomes one ranking fused from every space's evidence.

``query`` parses and checks what the user asked; ``searcher`` encodes it, gathers candidates and
fuses the spaces' scores (with ``fusion``'s calibration and weights, ``hubness``'s corrections,
``wordnet``'s classes, ``lexical``'s BM25, ``filters`` and ``feedback``); ``batch`` answers many.
"""

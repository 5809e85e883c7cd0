"""Adapting the search to a catalog (``imgsearch train``) and measuring it (``imgsearch eval``)."""

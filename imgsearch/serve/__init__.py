"""``imgsearch serve``: a warm search service with a web page."""

"""``imgsearch index``: embed a folder, build the Annoy parts, calibrate, publish a generation;
and keep it current with ``--watch``."""

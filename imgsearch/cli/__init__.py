"""The ``imgsearch`` command: a client of the public API, with output for people and pipes."""

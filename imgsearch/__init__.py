"""imgsearch: command-line image search by example, by words, or both."""

__version__ = "0.1.0"

"""Silence native libraries that print to file descriptor 2 behind Python's back.

TensorFlow's absl start-up lines and LiteRT's "Created TensorFlow Lite XNNPACK
delegate" bypass ``sys.stderr``; users should see imgsearch's output, not their logs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null for the duration of the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow() -> None:
    """Import TensorFlow (once) with its C++ start-up chatter silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    with quiet_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")

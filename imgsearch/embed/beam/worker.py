"""The worker process of local Beam runs: Beam's own SDK worker, with logging quiet before Beam loads.

The worker ends with ``os._exit`` once the harness returns (the runner closed it: every bundle is
done and every shard written). The runner waits for each worker in turn, and a normal interpreter
exit with LiteRT and TensorFlow's modules loaded took ~0.2 s per worker (bench/scale.py).

Importing Beam without its Google Cloud extra logs a warning through the root logger, which (with
no handler yet) prints it and everything after it on the terminal; a handler and a level set first
keep the worker's stderr for real errors. Workers still log at ERROR (--default_sdk_harness_log_level).
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> None:
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.ERROR)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

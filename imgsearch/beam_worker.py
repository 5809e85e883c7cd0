"""The worker process of local Beam runs: Beam's own SDK worker, with logging quiet before Beam loads.

Importing Beam without its Google Cloud extra logs a warning through the root logger, which (with
no handler yet) prints it and everything after it on the terminal; a handler and a level set first
keep the worker's stderr for real errors. Workers still log at ERROR (--default_sdk_harness_log_level).
"""

from __future__ import annotations

import logging
import sys


def main() -> None:
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.ERROR)
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()

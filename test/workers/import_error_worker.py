"""A worker whose import fails before run_worker: the pool must report the ImportError."""

import a_module_that_does_not_exist  # noqa: F401

from procgrpc import run_worker

if __name__ == "__main__":
    run_worker()

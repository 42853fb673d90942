"""Serves like testing_worker.py, except that worker w1 exits at once: a pool where one worker fails to start."""
import os
import runpy
import sys

if os.environ.get("PROCGRPC_WORKER_ID") == "w1":
    sys.stderr.write("w1 refusing to start on purpose\n")
    sys.exit(5)
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "testing_worker.py"), run_name="__main__")

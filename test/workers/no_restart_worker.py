"""Serves like testing_worker.py the first time it starts; every later start (a restart after a
crash) exits at once. The marker file named by PROCGRPC_TEST_MARKER records the first start, so
a pool using this script has no ready worker once its worker has died."""
import os
import runpy
import sys

marker = os.environ["PROCGRPC_TEST_MARKER"]
if os.path.exists(marker):
    sys.stderr.write("restart refused on purpose\n")
    sys.exit(5)
open(marker, "w").close()
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "testing_worker.py"), run_name="__main__")

"""The benchmark worker with the LAB copy of the pipeline servicer (bench/profile/lab_pipeline.py)
in place of procgrpc's; the variant is $PGLAB_VARIANT. procgrpc itself is not modified."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

import procgrpc._pipeline  # noqa: E402

import lab_pipeline  # noqa: E402

procgrpc._pipeline.handler = lab_pipeline.handler  # worker.py looks it up when it starts serving

import runpy  # noqa: E402

runpy.run_path(os.path.join(HERE, "..", "bench_worker.py"), run_name="__main__")

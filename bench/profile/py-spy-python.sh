#!/bin/bash
# A "python" for WorkerPool that runs the worker under py-spy (PyPI) and writes a raw (collapsed)
# profile to $PGPROF_OUT. py-spy cannot attach to a running process here (it fails to read the
# version of pyenv's python), so it starts the worker as its child; this script stands between
# the pool and py-spy so that the pool's SIGTERM reaches the worker and py-spy can write its file.
# py-spy is not a project dependency: install it into the venv first (.venv/bin/pip install py-spy).
here=$(dirname "$0")
py=${PGPROF_PYTHON:-$here/../../.venv/bin/python}
spy=${PGPROF_PYSPY:-$here/../../.venv/bin/py-spy}
"$spy" record --rate "${PGPROF_RATE:-250}" --format raw --nonblocking --output "${PGPROF_OUT:-/tmp/pgprof-worker-$$.txt}" ${PGPROF_SPY_ARGS:-} -- "$py" "$@" &
spy_pid=$!
trap 'kill -TERM $(pgrep -P $spy_pid) 2>/dev/null; wait $spy_pid; exit 0' TERM INT
wait $spy_pid

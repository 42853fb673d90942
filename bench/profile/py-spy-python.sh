#!/bin/sh
# A "python" for WorkerPool that runs the worker under py-spy (PyPI) and writes a raw (collapsed)
# profile to $PGPROF_OUT (default /tmp/pgprof-worker-<pid>.txt). The worker's parent is then py-spy,
# which lives exactly as long as the worker.
here=$(dirname "$0")
py=${PGPROF_PYTHON:-$here/../../.venv/bin/python}
spy=${PGPROF_PYSPY:-$here/../../.venv/bin/py-spy}
exec "$spy" record --rate "${PGPROF_RATE:-250}" --format raw --output "${PGPROF_OUT:-/tmp/pgprof-worker-$$.txt}" ${PGPROF_SPY_ARGS:-} -- "$py" "$@"

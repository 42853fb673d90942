"""A worker that refuses to start: writes one line to stderr and exits with code 7."""

import sys

if __name__ == "__main__":
    sys.stderr.write("worker refusing to start: exiting on purpose\n")
    sys.stderr.flush()
    sys.exit(7)

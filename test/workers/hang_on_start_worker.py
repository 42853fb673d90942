"""A worker that never gets to run_worker, for the pool's start-timeout test."""

import time

if __name__ == "__main__":
    while True:
        time.sleep(3600)

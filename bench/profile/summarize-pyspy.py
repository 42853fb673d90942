"""Turns a py-spy raw (collapsed) profile into a per-call cost breakdown (issue 15 §2).

Usage: python summarize-pyspy.py PROFILE.txt CALLS RATE [TOP]
Each line of a raw profile is ``frame;frame;...;leaf COUNT``. Samples are charged to the
innermost frame that is procgrpc's (``procgrpc/``), the bench servicer or the lab copy
(``bench/``), grpc.aio (``grpc/aio``, ``grpc/_cython``), protobuf, or asyncio; the rest is "other".
"""
import collections
import re
import sys

OWNERS = [
    ("procgrpc pipeline (_services/pipeline.py)", re.compile(r"procgrpc/_services/pipe(line|_context)\.py")),
    ("procgrpc handler wrapper (_exception_mapping.py)", re.compile(r"procgrpc/_exception_mapping\.py|bench/profile/lab_wrapper\.py")),
    ("procgrpc contexts (_context.py, _call_context.py, _introspection.py)", re.compile(r"procgrpc/_(context|call_context|introspection)\.py")),
    ("procgrpc other", re.compile(r"procgrpc/")),
    ("servicer (bench_worker.py)", re.compile(r"bench_worker\.py")),
    ("protobuf", re.compile(r"google/protobuf|_pb2\.py")),
    ("grpc.aio (Cython, Python)", re.compile(r"grpc/|cygrpc|\.pyx")),
    ("asyncio event loop", re.compile(r"asyncio/|selectors\.py")),
]


def main() -> None:
    path, calls, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    layers: "collections.Counter[str]" = collections.Counter()
    frames: "collections.Counter[str]" = collections.Counter()
    leaf_frames: "collections.Counter[str]" = collections.Counter()
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            stack, _, count_s = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_s)
            parts = stack.split(";")
            if any("_find_and_load" in frame for frame in parts):
                continue  # start-up imports, not calls
            total += count
            leaf_frames[parts[-1]] += count
            for frame in reversed(parts):
                # First (innermost) frame that belongs to a layer other than asyncio wins, except
                # that asyncio frames under procgrpc code are charged to procgrpc.
                owner = next((name for name, rx in OWNERS if rx.search(frame)), None)
                if owner is not None and not owner.startswith("asyncio") and not owner.startswith("grpc.aio"):
                    layers[owner] += count
                    frames[frame] += count
                    break
            else:
                owner = next((name for name, rx in OWNERS if rx.search(parts[-1])), "other")
                layers[owner] += count
    us_per_sample = 1e6 / rate
    def per(n: int) -> str:
        return f"{n * us_per_sample / calls:.2f} µs/call"
    print(f"profile {path}: {total} samples at {rate:g}/s = {total / rate:.2f} s of Python thread time, {calls} calls "
          f"→ {per(total)}\n")
    print("| layer (innermost procgrpc/servicer/protobuf frame; else the leaf's) | share | per call |\n|---|---|---|")
    for name, n in layers.most_common():
        print(f"| {name} | {100 * n / total:.1f}% | {per(n)} |")
    print(f"\nTop {top} charged frames:")
    for frame, n in frames.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {per(n):>16}  {frame}")
    print(f"\nTop {top} leaf frames:")
    for frame, n in leaf_frames.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {per(n):>16}  {frame}")


if __name__ == "__main__":
    main()

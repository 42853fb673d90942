// Unit tests of the stream lane's response frames (pure logic over real files).
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src";
import { LaneRef } from "../../src/gen/procgrpc/internal/v1/pipeline";
import { PipeLane } from "../../src/transport/lane-pipe";
import { LANE_STREAM_PREFIX, laneStreamPath, unframe } from "../../src/transport/lane-stream";
import { LaneError, SharedMemoryLane, isSpareFileName } from "../../src/transport/shared-memory-lane";

// The lane is used only on a memory-backed directory.
const scratch = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "lane-stream-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function pipeLane(): PipeLane {
  return new PipeLane(SharedMemoryLane.open({ baseDir: scratch, fallbackDir: scratch }), { thresholdBytes: 1024, reserveBytes: 0 }, silentLogger);
}

(existsSync("/dev/shm") ? describe : describe.skip)("stream lane frames", () => {
  test("the alias path", () => {
    expect(laneStreamPath("/pkg.Svc/Method")).toBe(`${LANE_STREAM_PREFIX}/pkg.Svc/Method`);
  });

  test("an inline frame is the message after its tag; a reference frame is read from its file, which is removed", () => {
    const lane = pipeLane();
    expect(unframe(lane, Buffer.from([0, 104, 105]))).toEqual(Buffer.from("hi"));
    const large = Buffer.alloc(4096, 7);
    const ref = lane.outgoing(large) as LaneRef;
    expect(readdirSync(lane.lane.dir)).toHaveLength(1);
    expect(unframe(lane, Buffer.concat([Buffer.from([1]), LaneRef.encode(ref).finish()]))).toEqual(large);
    expect(readdirSync(lane.lane.dir).filter((n) => !isSpareFileName(n))).toHaveLength(0); // read: a spare of the reader's at most
    lane.close();
  });

  test("a frame of neither kind, a reference that does not decode, or a missing file is a LaneError", () => {
    const lane = pipeLane();
    expect(() => unframe(lane, Buffer.from([7, 1, 2]))).toThrow(LaneError);
    expect(() => unframe(lane, Buffer.alloc(0))).toThrow(LaneError);
    expect(() => unframe(lane, Buffer.from([1, 0xff, 0xff, 0xff]))).toThrow(LaneError);
    const gone = Buffer.concat([Buffer.from([1]), LaneRef.encode({ name: "n-0-abc", length: 5, nonce: 1 }).finish()]);
    expect(() => unframe(lane, gone)).toThrow(/missing/);
    lane.close();
  });
});

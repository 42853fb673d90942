// Unit tests of the stream lane frames and the per-stream bound (pure logic over real files).
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src";
import { PipeLane } from "../../src/transport/lane-pipe";
import { LANE_STREAM_PREFIX, STREAM_LANE_OUTSTANDING_BYTES, StreamLaneFiles, laneStreamPath, unframe } from "../../src/transport/lane-stream";
import { LaneError, SharedMemoryLane } from "../../src/transport/shared-memory-lane";

// The lane is used only on a memory-backed directory.
const scratch = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "lane-stream-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function pipeLane(thresholdBytes = 1024): PipeLane {
  return new PipeLane(SharedMemoryLane.open({ baseDir: scratch, fallbackDir: scratch }), { thresholdBytes, reserveBytes: 0 }, silentLogger);
}

(existsSync("/dev/shm") ? describe : describe.skip)("stream lane frames", () => {
  test("the alias path", () => {
    expect(laneStreamPath("/pkg.Svc/Method")).toBe(`${LANE_STREAM_PREFIX}/pkg.Svc/Method`);
  });

  test("small messages go inline; large ones as files, read back exactly and removed", () => {
    const lane = pipeLane();
    const files = new StreamLaneFiles(lane);
    const small = Buffer.from("hello");
    expect(files.unframe(files.frame(small))).toEqual(small);
    const large = Buffer.alloc(4096, 7);
    const frame = files.frame(large);
    expect(frame.length).toBeLessThan(100);
    expect(readdirSync(lane.lane.dir)).toHaveLength(1);
    expect(unframe(lane, frame)).toEqual(large);
    expect(readdirSync(lane.lane.dir)).toHaveLength(0);
    lane.close();
  });

  test("unread files are bounded per stream; over the bound messages go inline; close removes what is unread", () => {
    const lane = pipeLane();
    const files = new StreamLaneFiles(lane);
    const message = Buffer.alloc(1024 * 1024, 1);
    const frames = Array.from({ length: 12 }, () => files.frame(message));
    const asFiles = frames.filter((f) => f.length < 100).length;
    expect(asFiles).toBe(STREAM_LANE_OUTSTANDING_BYTES / message.length);
    // Reading one frees room for one more.
    unframe(lane, frames[0]);
    expect(files.frame(message).length).toBeLessThan(100);
    files.close();
    expect(readdirSync(lane.lane.dir)).toEqual([]);
    lane.close();
  });

  test("a frame of neither kind, or a reference that does not decode, is a LaneError", () => {
    const lane = pipeLane();
    expect(() => unframe(lane, Buffer.from([7, 1, 2]))).toThrow(LaneError);
    expect(() => unframe(lane, Buffer.alloc(0))).toThrow(LaneError);
    expect(() => unframe(lane, Buffer.from([1, 0xff, 0xff, 0xff]))).toThrow(LaneError);
    lane.close();
  });
});

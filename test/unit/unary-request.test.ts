// Unit tests of a unary request already in a lane file (real files, no processes).
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src";
import { PipeLane } from "../../src/transport/lane-pipe";
import { SharedMemoryLane, isSpareFileName } from "../../src/transport/shared-memory-lane";
import { LaneRequest, discardRequest, requestBytes, requestLength } from "../../src/transport/unary-request";

// The lane takes messages only on a memory-backed directory.
const scratch = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "unary-request-test-"));
const describeShm = existsSync("/dev/shm") ? describe : describe.skip;
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function pipeLane(): PipeLane {
  const lane = SharedMemoryLane.open({ baseDir: scratch, fallbackDir: scratch });
  return new PipeLane(lane, { thresholdBytes: 10, reserveBytes: 0 }, silentLogger);
}
const messageFiles = (lane: PipeLane): string[] => readdirSync(lane.lane.dir).filter((n) => !isSpareFileName(n));

describeShm("LaneRequest", () => {
  test("read back for a call that does not take the lane: the parts' bytes, and the file is gone", () => {
    const lane = pipeLane();
    try {
      const parts = [Buffer.from("head-"), Buffer.alloc(100, 7), Buffer.from("-tail")];
      const ref = lane.outgoing(parts, 110);
      const request = new LaneRequest(ref!, 110, lane);
      expect(requestLength(request)).toBe(110);
      expect(messageFiles(lane)).toHaveLength(1);
      expect(requestBytes(request).equals(Buffer.concat(parts))).toBe(true);
      expect(messageFiles(lane)).toEqual([]);
    } finally {
      lane.close();
    }
  });

  test("discarded when it will not be sent: the file is removed; bytes are left alone", () => {
    const lane = pipeLane();
    try {
      const request = new LaneRequest(lane.outgoing(Buffer.alloc(50, 1))!, 50, lane);
      discardRequest(request);
      expect(readdirSync(lane.lane.dir)).toEqual([]);
      expect(() => request.bytes()).toThrow(/missing/);
      const bytes = Buffer.from("plain");
      discardRequest(bytes);
      discardRequest(undefined);
      expect(requestBytes(bytes)).toBe(bytes);
      expect(requestLength(bytes)).toBe(5);
    } finally {
      lane.close();
    }
  });
});

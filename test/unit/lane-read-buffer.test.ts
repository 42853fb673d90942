/** The reused buffer for lane reads (src/transport/lane-read-buffer.ts): reuse only while no decoded message holds a view of it. */
import { LARGE_READ_BUFFER_IDLE_MS, LaneReadBuffer, mayHoldViewOf } from "../../src/transport/lane-read-buffer";

afterEach(() => jest.useRealTimers());

test("a buffer the decoded message holds no view of is kept and lent again for a read that fits", () => {
  const reads = new LaneReadBuffer();
  const first = reads.take(1 << 20);
  reads.giveBack(first, { payload: Buffer.from(first.subarray(0, 10)), text: "copied", items: [1, 2, 3] });
  expect(reads.kept).toBe(first.length);
  expect(reads.take(1000)).toBe(first);
  expect(reads.kept).toBe(0); // lent: a second read meanwhile would get its own
  expect(reads.take(1 << 20)).not.toBe(first);
});

test("a buffer a decoded message holds a view of, at any depth, is left to the message", () => {
  const reads = new LaneReadBuffer();
  for (const decoded of [
    (b: Buffer) => b, // a pass-through method (rawUnaryMethod)
    (b: Buffer) => ({ payload: b.subarray(4, 8) }),
    (b: Buffer) => ({ inner: { list: [{ chunk: new Uint8Array(b.buffer, b.byteOffset, 4) }] } }),
    (b: Buffer) => ({ map: new Map([["k", { data: new DataView(b.buffer) }]]) }),
  ]) {
    const buffer = reads.take(1 << 20);
    reads.giveBack(buffer, decoded(buffer));
    expect(reads.kept).toBe(0);
  }
});

test("a message too large to search is taken to hold a view; repeated scalars are not searched one by one", () => {
  const memory = new ArrayBuffer(16);
  expect(mayHoldViewOf({ values: Array.from({ length: 1_000_000 }, (_, i) => i) }, memory)).toBe(false);
  expect(mayHoldViewOf({ rows: Array.from({ length: 100 }, () => ({ a: 1 })) }, memory, 1000)).toBe(false);
  expect(mayHoldViewOf({ rows: Array.from({ length: 2000 }, () => ({ a: 1 })) }, memory, 1000)).toBe(true);
  expect(mayHoldViewOf(undefined, memory)).toBe(false);
});

test("a large kept buffer is dropped after a second without a read that needs it", () => {
  jest.useFakeTimers();
  const reads = new LaneReadBuffer();
  reads.giveBack(reads.take(8 << 20), {});
  expect(reads.kept).toBe(8 << 20);
  jest.advanceTimersByTime(LARGE_READ_BUFFER_IDLE_MS);
  expect(reads.kept).toBe(0);
  reads.giveBack(reads.take(1 << 20), {});
  jest.advanceTimersByTime(LARGE_READ_BUFFER_IDLE_MS * 3);
  expect(reads.kept).toBe(1 << 20); // small ones stay
});

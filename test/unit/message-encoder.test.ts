// Unit tests of request encoding with a reused BinaryWriter (pure logic).
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { encodeMessage, LARGE_WRITER_BYTES, LARGE_WRITER_IDLE_MS, RETAINED_WRITER_MAX_BYTES, sharedWriterHolds } from "../../src/call/message-encoder";
import type { MessageType } from "../../src/call/definition";
import { EchoRequest } from "../../src/gen/bench/v1/bench";

const fresh = (payload: Buffer): Buffer => Buffer.from(EchoRequest.encode({ payload }).finish());

describe("encodeMessage", () => {
  test("gives the bytes a fresh writer gives, for messages of every size in any order", () => {
    const sizes = [16, 1 << 20, 0, 300_000, 5, RETAINED_WRITER_MAX_BYTES + 1, 64, 2 << 20, 1];
    for (const [i, size] of sizes.entries()) {
      const payload = Buffer.alloc(size, i + 1);
      expect(encodeMessage(EchoRequest, { payload }).equals(fresh(payload))).toBe(true);
    }
  });

  test("a result is never changed by a later encode (the shared writer's buffer is not handed out)", () => {
    const first = encodeMessage(EchoRequest, { payload: Buffer.alloc(100_000, 1) });
    const copy = Buffer.from(first);
    encodeMessage(EchoRequest, { payload: Buffer.alloc(100_000, 2) });
    encodeMessage(EchoRequest, { payload: Buffer.alloc(10, 3) });
    expect(first.equals(copy)).toBe(true);
  });

  test("an encode that throws does not spoil the next one", () => {
    encodeMessage(EchoRequest, { payload: Buffer.alloc(1000, 1) });
    const throwing: MessageType<{ payload: Uint8Array }> = {
      encode: (m: { payload: Uint8Array }, w?: unknown) => {
        const writer = (w as BinaryWriter | undefined) ?? new BinaryWriter();
        writer.uint32(10).uint32(5000); // half a message, then a failure
        if (m.payload.length > 1) throw new RangeError("cannot encode");
        return writer;
      },
      decode: () => ({ payload: new Uint8Array() }),
      fromPartial: () => ({ payload: new Uint8Array() }),
    };
    encodeMessage(throwing, { payload: new Uint8Array(0) }); // probed: it takes the shared writer
    expect(() => encodeMessage(throwing, { payload: new Uint8Array(2) })).toThrow(RangeError);
    const payload = Buffer.alloc(40, 9);
    expect(encodeMessage(EchoRequest, { payload }).equals(fresh(payload))).toBe(true);
  });

  test("a message type whose encode returns another runtime's writer is never given ours", () => {
    const given: unknown[] = [];
    const otherRuntime: MessageType<{ n: number }> = {
      encode: (m: { n: number }, w?: unknown) => {
        given.push(w);
        const bytes = Uint8Array.of(8, m.n);
        return { finish: () => bytes };
      },
      decode: () => ({ n: 0 }),
      fromPartial: () => ({ n: 0 }),
    };
    expect([...encodeMessage(otherRuntime, { n: 1 })]).toEqual([8, 1]);
    expect([...encodeMessage(otherRuntime, { n: 2 })]).toEqual([8, 2]);
    expect(given).toEqual([undefined, undefined]);
  });
});

describe("the kept writer's memory", () => {
  afterEach(() => jest.useRealTimers());

  test("a writer grown by a large message is dropped after an idle second; a small one is kept", () => {
    jest.useFakeTimers();
    encodeMessage(EchoRequest, { payload: Buffer.alloc(LARGE_WRITER_BYTES + 1) });
    expect(sharedWriterHolds()).toBeGreaterThan(LARGE_WRITER_BYTES);
    jest.advanceTimersByTime(LARGE_WRITER_IDLE_MS / 2);
    encodeMessage(EchoRequest, { payload: Buffer.alloc(LARGE_WRITER_BYTES + 1) }); // used again: kept longer
    jest.advanceTimersByTime(LARGE_WRITER_IDLE_MS / 2 + 1);
    expect(sharedWriterHolds()).toBeGreaterThan(LARGE_WRITER_BYTES);
    encodeMessage(EchoRequest, { payload: Buffer.alloc(10) }); // small messages do not keep it
    jest.advanceTimersByTime(LARGE_WRITER_IDLE_MS);
    expect(sharedWriterHolds()).toBe(0);
    encodeMessage(EchoRequest, { payload: Buffer.alloc(1000) });
    jest.advanceTimersByTime(10 * LARGE_WRITER_IDLE_MS);
    expect(sharedWriterHolds()).toBeGreaterThanOrEqual(1000);
  });

  test("a message over the retained maximum leaves no writer behind", () => {
    encodeMessage(EchoRequest, { payload: Buffer.alloc(RETAINED_WRITER_MAX_BYTES + 1) });
    expect(sharedWriterHolds()).toBe(0);
  });
});

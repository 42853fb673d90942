// Unit tests of encoding a message as parts that reference its large bytes values (pure logic).
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import type { MessageType } from "../../src/call/definition";
import { REFERENCED_BYTES_MIN, encodeMessageParts, partsLength } from "../../src/call/message-parts";
import { EchoRequest } from "../../src/gen/bench/v1/bench";
import { RespondRequest, RespondRequest_Mode } from "../../src/gen/testing/v1/conformance";

const big = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

describe("encodeMessageParts", () => {
  test("the parts, written back to back, are exactly encode().finish(); large values are the caller's own memory", () => {
    const payload = big(300_000, 7);
    const parts = encodeMessageParts(EchoRequest, EchoRequest.fromPartial({ payload }), 256 << 10) as Uint8Array[];
    expect(Buffer.concat(parts).equals(Buffer.from(EchoRequest.encode({ payload }).finish()))).toBe(true);
    expect(parts.some((p) => p === payload)).toBe(true);
    expect(partsLength(parts)).toBe(EchoRequest.encode({ payload }).finish().byteLength);
  });

  test("large values nested in messages (map entries here), beside small ones and other fields: the same bytes, lengths of every level right", () => {
    const message = RespondRequest.fromPartial({
      mode: RespondRequest_Mode.MODE_SET_CODE,
      details: "d".repeat(200),
      initial: { a: "x", b: "y".repeat(300) },
      initialBin: { "big-bin": big(REFERENCED_BYTES_MIN + 1, 1), "small-bin": big(10, 2), "huge-bin": big(1 << 20, 3) },
      trailingBin: { "t-bin": big(REFERENCED_BYTES_MIN, 4) },
      text: "after",
      count: 300,
    });
    const parts = encodeMessageParts(RespondRequest, message, 0) as Uint8Array[];
    const expected = Buffer.from(RespondRequest.encode(message).finish());
    expect(Buffer.concat(parts).equals(expected)).toBe(true);
    expect(parts.filter((p) => p.byteLength >= REFERENCED_BYTES_MIN)).toHaveLength(3);
  });

  test("undefined for a message without a bytes value of the size asked (it is encoded as usual)", () => {
    expect(encodeMessageParts(EchoRequest, EchoRequest.fromPartial({ payload: big(16, 1) }), 256 << 10)).toBeUndefined();
    expect(encodeMessageParts(EchoRequest, EchoRequest.fromPartial({ payload: big(100_000, 1) }), 256 << 10)).toBeUndefined();
    // Values under REFERENCED_BYTES_MIN are never worth parts, whatever is asked.
    expect(encodeMessageParts(EchoRequest, EchoRequest.fromPartial({ payload: big(1000, 1) }), 0)).toBeUndefined();
  });

  test("undefined for a type whose encode does not write into the writer it is given (another runtime), remembered", () => {
    let encodes = 0;
    const own: MessageType<{ payload: Uint8Array }> = {
      encode: (m: { payload: Uint8Array }) => {
        encodes++;
        return new BinaryWriter().uint32(10).bytes(m.payload);
      },
      decode: () => ({ payload: new Uint8Array() }),
      fromPartial: () => ({ payload: new Uint8Array() }),
    };
    expect(encodeMessageParts(own, { payload: big(1 << 20, 1) }, 0)).toBeUndefined();
    expect(encodeMessageParts(own, { payload: big(1 << 20, 1) }, 0)).toBeUndefined();
    expect(encodes).toBe(1);
  });

  test("a message too large to search is encoded as parts (the bytes are still right)", () => {
    const message = RespondRequest.fromPartial({ initialBin: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, big(1, i & 0xff)])) });
    const parts = encodeMessageParts(RespondRequest, message, 256 << 10) as Uint8Array[];
    expect(Buffer.concat(parts).equals(Buffer.from(RespondRequest.encode(message).finish()))).toBe(true);
  });
});

import {
  BadRequest,
  DebugInfo,
  ErrorInfo,
  Help,
  LocalizedMessage,
  PreconditionFailure,
  QuotaFailure,
  RequestInfo,
  ResourceInfo,
  RetryInfo,
} from "../gen/google/rpc/error_details";
import { Status as RpcStatusMessage } from "../gen/google/rpc/status";

export type {
  BadRequest,
  DebugInfo,
  ErrorInfo,
  Help,
  LocalizedMessage,
  PreconditionFailure,
  QuotaFailure,
  RequestInfo,
  ResourceInfo,
  RetryInfo,
} from "../gen/google/rpc/error_details";

/** The metadata key on which servers send a serialized `google.rpc.Status`. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

// One decoder per google.rpc detail type; the map key is the message's full name.
const decoders = {
  ErrorInfo,
  RetryInfo,
  DebugInfo,
  QuotaFailure,
  PreconditionFailure,
  BadRequest,
  RequestInfo,
  ResourceInfo,
  Help,
  LocalizedMessage,
} as const;

type KnownKinds = typeof decoders;

/** A decoded `google.rpc` error detail, discriminated by `kind` (the message name). */
export type KnownStatusDetail = {
  [K in keyof KnownKinds]: { kind: K; typeUrl: string; value: ReturnType<KnownKinds[K]["decode"]> };
}[keyof KnownKinds];

/** A detail whose type procgrpc does not know (or that failed to decode): kept raw, never dropped. */
export interface UnknownStatusDetail {
  kind: "Unknown";
  typeUrl: string;
  value: Uint8Array;
}

/** One entry of `google.rpc.Status.details`. */
export type StatusDetail = KnownStatusDetail | UnknownStatusDetail;

/** The names `findDetail` accepts. */
export type StatusDetailKind = StatusDetail["kind"];

/** The decoded value type for a detail kind, e.g. `DetailValue<"RetryInfo">` is `RetryInfo`. */
export type DetailValue<K extends StatusDetailKind> = Extract<StatusDetail, { kind: K }>["value"];

function decodeOne(typeUrl: string, value: Uint8Array): StatusDetail {
  const fullName = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
  const shortName = fullName.startsWith("google.rpc.") ? fullName.slice("google.rpc.".length) : "";
  if (Object.prototype.hasOwnProperty.call(decoders, shortName)) {
    const kind = shortName as keyof KnownKinds;
    try {
      return { kind, typeUrl, value: decoders[kind].decode(value) } as KnownStatusDetail;
    } catch {
      // A malformed detail is still evidence: keep its bytes.
    }
  }
  return { kind: "Unknown", typeUrl, value };
}

/**
 * Decodes the `grpc-status-details-bin` value a server sent. Returns `undefined` when the
 * bytes are not a `google.rpc.Status`; unknown detail types come back as `kind: "Unknown"`.
 */
export function decodeStatusDetails(bytes: Uint8Array): { code: number; message: string; details: StatusDetail[] } | undefined {
  try {
    const status = RpcStatusMessage.decode(bytes);
    return {
      code: status.code,
      message: status.message,
      details: status.details.map((any) => decodeOne(any.typeUrl, any.value)),
    };
  } catch {
    return undefined;
  }
}

import type { ErrorCategory } from "../core/categories";

/** One call that failed for good, kept so it can be inspected and replayed. */
export interface DeadLetter {
  /** Unique id (a UUID). */
  id: string;
  /** Full gRPC path, `/pkg.Service/Method`. */
  method: string;
  /** The request as sent: encoded protobuf bytes, base64. Replay sends exactly these bytes. */
  request: string;
  /** A JSON view of the request, for people (`procgrpc dlq show`); never used to replay. */
  requestJson: unknown;
  /** Final status code (numeric) and its name. */
  code: number;
  codeName: string;
  details: string;
  category: ErrorCategory;
  /** Attempts made in all, over the original call and every failed replay. */
  attempts: number;
  /** When the first attempt failed and when the last one did (ISO 8601). */
  firstFailureAt: string;
  lastFailureAt: string;
  /** How many replays failed. */
  replays: number;
  /** Where it came from, e.g. `{ batchIndex: 17 }`. */
  source?: Record<string, unknown>;
}

/** A later failure of a dead letter (a failed replay). */
export interface DeadLetterFailure {
  code: number;
  codeName: string;
  details: string;
  category: ErrorCategory;
  attempts: number;
  at: string;
}

/**
 * Where dead letters go. Implementations must make `add`, `remove` and `recordFailure` durable
 * before their promise resolves, so that a crash never loses a letter nor resurrects a removed one.
 */
export interface DeadLetterStore {
  add(letter: DeadLetter): Promise<void>;
  list(): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | undefined>;
  /** Removes one letter; false when there was none with that id. */
  remove(id: string): Promise<boolean>;
  recordFailure(id: string, failure: DeadLetterFailure): Promise<void>;
  /** Removes every letter; resolves with how many there were. */
  purge(): Promise<number>;
  /** Optional housekeeping (e.g. rewriting a log without removed letters). */
  compact?(): Promise<void>;
}

/** Applies a failed replay to a letter. */
export function withFailure(letter: DeadLetter, failure: DeadLetterFailure): DeadLetter {
  return {
    ...letter,
    code: failure.code,
    codeName: failure.codeName,
    details: failure.details,
    category: failure.category,
    attempts: letter.attempts + failure.attempts,
    lastFailureAt: failure.at,
    replays: letter.replays + 1,
  };
}

/** A dead-letter store in memory (tests, or callers that persist letters themselves). */
export class MemoryDeadLetterStore implements DeadLetterStore {
  private readonly letters = new Map<string, DeadLetter>();

  async add(letter: DeadLetter): Promise<void> {
    this.letters.set(letter.id, letter);
  }

  async list(): Promise<DeadLetter[]> {
    return [...this.letters.values()];
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    return this.letters.get(id);
  }

  async remove(id: string): Promise<boolean> {
    return this.letters.delete(id);
  }

  async recordFailure(id: string, failure: DeadLetterFailure): Promise<void> {
    const letter = this.letters.get(id);
    if (letter) this.letters.set(id, withFailure(letter, failure));
  }

  async purge(): Promise<number> {
    const n = this.letters.size;
    this.letters.clear();
    return n;
  }
}

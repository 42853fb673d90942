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
 * A letter taken by one replayer: no other replayer (in this process or another) gets it until
 * the claim is settled, or until its owner process has died (then it can be claimed again).
 */
export interface DeadLetterClaim {
  readonly letter: DeadLetter;
  /** The replay succeeded: removes the letter, durably. */
  complete(): Promise<void>;
  /** Gives the letter back, with the failed replay recorded when there is one. */
  release(failure?: DeadLetterFailure): Promise<void>;
}

/**
 * Where dead letters go. Implementations must make `add`, `remove` and `recordFailure` durable
 * before their promise resolves, so that a crash never loses a letter nor resurrects a removed one.
 *
 * `claimable` and `claim` are optional: a store that has them can be replayed by several
 * replayers at once (processes, or a replayer beside the application that writes letters) without
 * delivering a letter twice. `replayDeadLetters` uses them when they are there; a store without
 * them must be replayed by one replayer at a time.
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
  /** Ids that `claim` may give now: letters not claimed, and claims whose owner died. */
  claimable?(): Promise<string[]>;
  /** Takes one letter for this replayer; undefined when it is gone or another live replayer has it. */
  claim?(id: string): Promise<DeadLetterClaim | undefined>;
}

/** Returns a guard that lets a claim on letter `id` be settled (completed or released) once only. */
export function settleOnce(id: string): () => void {
  let settled = false;
  return () => {
    if (settled) throw new Error(`dead letter ${id}: its claim was already settled`);
    settled = true;
  };
}

/** A store that supports claims (`claimable` and `claim`). */
export type ClaimingDeadLetterStore = DeadLetterStore & Required<Pick<DeadLetterStore, "claimable" | "claim">>;

/** Whether `store` supports claims, so that concurrent replays never deliver a letter twice. */
export function supportsClaims(store: DeadLetterStore): store is ClaimingDeadLetterStore {
  return typeof store.claim === "function" && typeof store.claimable === "function";
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
export class MemoryDeadLetterStore implements ClaimingDeadLetterStore {
  private readonly letters = new Map<string, DeadLetter>();
  private readonly claimed = new Set<string>();

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
    this.claimed.delete(id);
    return this.letters.delete(id);
  }

  async claimable(): Promise<string[]> {
    return [...this.letters.keys()].filter((id) => !this.claimed.has(id));
  }

  async claim(id: string): Promise<DeadLetterClaim | undefined> {
    const letter = this.letters.get(id);
    if (!letter || this.claimed.has(id)) return undefined;
    this.claimed.add(id);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.claimed.delete(id);
      return true;
    };
    return {
      letter,
      complete: async () => {
        if (settle()) this.letters.delete(id);
      },
      release: async (failure) => {
        if (settle() && failure) await this.recordFailure(id, failure);
      },
    };
  }

  async recordFailure(id: string, failure: DeadLetterFailure): Promise<void> {
    const letter = this.letters.get(id);
    if (letter) this.letters.set(id, withFailure(letter, failure));
  }

  async purge(): Promise<number> {
    const n = this.letters.size;
    this.letters.clear();
    this.claimed.clear();
    return n;
  }
}

/**
 * What a per-slot option function is told about the slot: `index` is its place in the pool
 * (0, 1, …, reused once a slot that had it is gone, so it stays below `max + spares`), `id` its
 * name (`w<index>`). Both are the same for every process of the slot, across restarts and
 * recycles, so `index` is what to map to a GPU or to cores.
 */
export interface WorkerSlotInfo {
  readonly index: number;
  readonly id: string;
}

/** A value, or a function of the slot that gives it (called once per slot, when the slot is made). */
export type PerSlot<T> = T | ((slot: WorkerSlotInfo) => T);

/** Environment, arguments and CPU set of one slot's processes. */
export interface SlotResources {
  env: Readonly<Record<string, string>>;
  args: readonly string[];
  /** CPUs to pin the worker to (`os.sched_setaffinity`), or undefined to leave it unpinned. */
  cpuAffinity: readonly number[] | undefined;
}

/** The per-slot options as `WorkerPoolOptions` takes them. */
export interface SlotResourceOptions {
  env: PerSlot<Readonly<Record<string, string>>> | undefined;
  args: PerSlot<readonly string[]> | undefined;
  cpuAffinity: PerSlot<readonly number[] | undefined> | undefined;
}

const valueFor = <T>(option: PerSlot<T> | undefined, slot: WorkerSlotInfo): T | undefined =>
  typeof option === "function" ? (option as (s: WorkerSlotInfo) => T)(slot) : option;

/**
 * Works out one slot's resources, checking what the options (or their functions) gave: a
 * wrong shape is a `TypeError` naming the option and the slot.
 */
export function slotResources(options: SlotResourceOptions, slot: WorkerSlotInfo): SlotResources {
  const where = (name: string): string => (typeof options[name as keyof SlotResourceOptions] === "function" ? `${name}(${JSON.stringify(slot)})` : name);
  const env = valueFor(options.env, slot) ?? {};
  if (typeof env !== "object" || env === null || Array.isArray(env) || Object.values(env).some((v) => typeof v !== "string")) {
    throw new TypeError(`WorkerPool: ${where("env")} must give an object of strings, got ${JSON.stringify(env)}`);
  }
  const args = valueFor(options.args, slot) ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) {
    throw new TypeError(`WorkerPool: ${where("args")} must give an array of strings, got ${JSON.stringify(args)}`);
  }
  const cpus = valueFor(options.cpuAffinity, slot);
  if (cpus !== undefined && (!Array.isArray(cpus) || cpus.length === 0 || cpus.some((c) => !Number.isInteger(c) || c < 0))) {
    throw new TypeError(`WorkerPool: ${where("cpuAffinity")} must give a non-empty array of CPU numbers (integers >= 0) or undefined, got ${JSON.stringify(cpus)}`);
  }
  return { env: { ...env }, args: [...args], cpuAffinity: cpus === undefined ? undefined : [...new Set(cpus)].sort((a, b) => a - b) };
}

/** Checks the shape of the per-slot options at construction (functions are checked when called). */
export function checkSlotResourceOptions(options: SlotResourceOptions): void {
  for (const name of ["env", "args", "cpuAffinity"] as const) {
    if (typeof options[name] !== "function" && options[name] !== undefined) slotResources({ env: undefined, args: undefined, cpuAffinity: undefined, [name]: options[name] }, { index: 0, id: "w0" });
  }
}

/**
 * `handleSignals: true`: on SIGINT or SIGTERM of the Node process, run `shutdown()` once, then
 * remove the handlers and re-raise the signal so that Node's default behaviour (exit) or the
 * application's own handlers still apply. Returns a function that removes the handlers.
 */
export function installSignalHandlers(shutdown: () => Promise<void>, onError: (err: unknown) => void): () => void {
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
  let handling = false;
  const remove = (): void => {
    for (const s of signals) process.removeListener(s, handler);
  };
  function handler(signal: NodeJS.Signals): void {
    if (handling) return;
    handling = true;
    shutdown()
      .catch(onError)
      .finally(() => {
        remove();
        // Nobody else listens: re-raise so the process ends as the signal intends.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      });
  }
  for (const s of signals) process.on(s, handler);
  return remove;
}

/** Polls an async check until it holds or `timeoutMs` passes; the deadline bounds a failure only. */
export async function untilAsync(check: () => Promise<boolean>, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}

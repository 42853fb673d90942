/**
 * Whether only the portable process mechanisms may be used: on macOS (and anything not Linux),
 * or everywhere with `PROCGRPC_PORTABLE=1`, which forces the paths macOS takes so that Linux
 * tests exercise them. The worker reads the same variable (it inherits it): no
 * `PR_SET_PDEATHSIG`, parent death by control-fd EOF and `getppid` polling. Here: resident
 * memory from `ps` instead of /proc, and the 103-byte socket path limit instead of 107.
 */
export function portable(): boolean {
  return process.platform !== "linux" || process.env.PROCGRPC_PORTABLE === "1";
}

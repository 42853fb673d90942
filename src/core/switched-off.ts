import type { StatusDetail } from "./status-details";

/** The ErrorInfo reason on errors of a switched-off method (from the pool or from a worker). */
export const SWITCHED_OFF_REASON = "SWITCHED_OFF";

/** Whether status details carry procgrpc's kill-switch ErrorInfo. */
export function hasSwitchedOffDetail(details: readonly StatusDetail[]): boolean {
  return details.some((d) => d.kind === "ErrorInfo" && d.value.reason === SWITCHED_OFF_REASON && d.value.domain === "procgrpc");
}

import type { StatusDetail } from "./status-details";

/** The ErrorInfo reason on errors of a switched-off method (from the pool or from a worker). */
export const SWITCHED_OFF_REASON = "SWITCHED_OFF";

/** Whether the (first) ErrorInfo of status details is procgrpc's kill-switch one. */
export function hasSwitchedOffDetail(details: readonly StatusDetail[]): boolean {
  const info = details.find((d) => d.kind === "ErrorInfo");
  return info?.kind === "ErrorInfo" && info.value.reason === SWITCHED_OFF_REASON && info.value.domain === "procgrpc";
}

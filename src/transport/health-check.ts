import type { Client, ServiceError } from "@grpc/grpc-js";
import { HealthCheckRequest, HealthCheckResponse, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health";

/** What a grpc.health.v1 `Check` answered, as a name: `SERVING`, `NOT_SERVING`, `UNKNOWN`, … */
export type ServingStatus = keyof typeof HealthCheckResponse_ServingStatus;

const CHECK_PATH = "/grpc.health.v1.Health/Check";

/** Asks a worker's grpc.health.v1 service for the status of `service` ("" for the whole server). */
export function checkHealth(client: Client, deadline: Date, service = ""): Promise<ServingStatus> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      CHECK_PATH,
      (req: HealthCheckRequest) => Buffer.from(HealthCheckRequest.encode(req).finish()),
      (bytes: Buffer) => HealthCheckResponse.decode(bytes),
      { service },
      { deadline },
      (err: ServiceError | null, res?: HealthCheckResponse) => {
        if (err) reject(err);
        else resolve((HealthCheckResponse_ServingStatus[res?.status ?? 0] ?? "UNKNOWN") as ServingStatus);
      },
    );
  });
}

import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  ServerReflectionRequest,
  ServerReflectionResponse,
} from "../gen/grpc/reflection/v1alpha/reflection";
import { LOCAL_CHANNEL_OPTIONS } from "../pool/worker-process";

const METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/**
 * A grpc.reflection.v1alpha client (what grpcio-reflection serves) on one worker socket:
 * lists services and fetches the FileDescriptorProtos that define a symbol, with every
 * dependency, so a call can be encoded without the .proto file.
 */
export class ReflectionClient {
  private readonly client: Client;

  constructor(socketPath: string, private readonly timeoutMs = 10000) {
    this.client = new Client(`unix:${socketPath}`, credentials.createInsecure(), LOCAL_CHANNEL_OPTIONS);
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }

  /** Names of the services the worker serves. */
  async listServices(): Promise<string[]> {
    const [res] = await this.exchange([{ host: "", listServices: "" }]);
    return (res.listServicesResponse?.service ?? []).map((s) => s.name);
  }

  /** Serialized FileDescriptorProtos of the file defining `symbol` and of all its dependencies. */
  async filesForSymbol(symbol: string): Promise<Uint8Array[]> {
    const [res] = await this.exchange([{ host: "", fileContainingSymbol: symbol }]);
    return res.fileDescriptorResponse?.fileDescriptorProto ?? [];
  }

  /** Serialized FileDescriptorProtos for the named files (for dependencies the server left out). */
  async filesByName(names: readonly string[]): Promise<Uint8Array[]> {
    const responses = await this.exchange(names.map((fileByFilename) => ({ host: "", fileByFilename })));
    return responses.flatMap((r) => r.fileDescriptorResponse?.fileDescriptorProto ?? []);
  }

  /** Sends the requests on one stream and returns one response per request; an ErrorResponse throws. */
  private exchange(requests: Partial<ServerReflectionRequest>[]): Promise<ServerReflectionResponse[]> {
    return new Promise((resolve, reject) => {
      const responses: ServerReflectionResponse[] = [];
      const call = this.client.makeBidiStreamRequest(
        METHOD,
        (req: ServerReflectionRequest) => Buffer.from(ServerReflectionRequest.encode(req).finish()),
        (bytes: Buffer) => ServerReflectionResponse.decode(bytes),
        new Metadata(),
        { deadline: new Date(Date.now() + this.timeoutMs) },
      );
      call.on("data", (res: ServerReflectionResponse) => {
        if (res.errorResponse) {
          call.cancel();
          reject(new Error(`server reflection: ${res.errorResponse.errorMessage} (code ${res.errorResponse.errorCode})`));
          return;
        }
        responses.push(res);
        if (responses.length === requests.length) call.end();
      });
      call.on("error", (err: ServiceError) => reject(new Error(`server reflection failed: ${err.details || err.message}`)));
      call.on("end", () => resolve(responses));
      for (const r of requests) call.write(ServerReflectionRequest.fromPartial(r));
    });
  }
}

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files made at test time with the openssl CLI. */
export interface TestPki {
  dir: string;
  ca: { cert: string; key: string };
  otherCa: { cert: string; key: string };
  server: { cert: string; key: string };
  client: { cert: string; key: string };
  read(path: string): Buffer;
  remove(): void;
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function ca(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${name}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
  return { cert, key };
}

function leaf(dir: string, name: string, issuer: { cert: string; key: string }, sans: string[], usage: string): { cert: string; key: string } {
  const [cert, key, csr, ext] = ["pem", "key", "csr", "ext"].map((e) => join(dir, `${name}.${e}`));
  writeFileSync(ext, `subjectAltName=${sans.join(",")}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`]);
  openssl(["x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key, "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]);
  return { cert, key };
}

/** A CA, a server certificate for `serverSans` (e.g. `IP:127.0.0.1`), a client certificate, and an unrelated CA. */
export function makePki(serverSans: string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "pg-pki-"));
  const main = ca(dir, "ca");
  return {
    dir,
    ca: main,
    otherCa: ca(dir, "other-ca"),
    server: leaf(dir, "server", main, serverSans, "serverAuth"),
    client: leaf(dir, "client", main, ["DNS:client"], "clientAuth"),
    read: (path) => readFileSync(path),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// deploy/k8s must be valid Kubernetes: kubeconform (from the Go module proxy, .tools/bin) in
// strict mode against the Kubernetes 1.33 JSON schemas that the kubernetes-validate PyPI package
// ships (installed in .venv by scripts/setup.mjs). Those schemas point into a shared
// _definitions.json by an absolute $ref that kubeconform cannot load, so each needed kind is made
// standalone here first (its definitions inlined).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PYTHON, ROOT } from "./helpers/env";

const KUBECONFORM = join(ROOT, ".tools", "bin", "kubeconform");
const K8S_VERSION = "v1.33.0";
const MANIFESTS = join(ROOT, "deploy", "k8s");
const KINDS = ["deployment-apps-v1", "service-v1", "secret-v1", "configmap-v1", "networkpolicy-networking-v1"];

let schemaDir: string;

function inlineRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(inlineRefs);
  if (node && typeof node === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = k === "$ref" && typeof v === "string" ? v.replace(/^\/api\/_definitions\.json#/, "#") : inlineRefs(v);
    return out;
  }
  return node;
}

beforeAll(() => {
  if (!existsSync(KUBECONFORM)) throw new Error(`${KUBECONFORM} is missing: run \`node scripts/setup.mjs\` (needs Go)`);
  const pkg = execFileSync(PYTHON, ["-c", "import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))"], { encoding: "utf8" }).trim();
  const src = join(pkg, "kubernetes-json-schema", `${K8S_VERSION}-local-strict`);
  const defs = inlineRefs((JSON.parse(readFileSync(join(src, "_definitions.json"), "utf8")) as { $defs: unknown }).$defs);
  schemaDir = mkdtempSync(join(tmpdir(), "pg-k8s-schemas-"));
  for (const kind of KINDS) {
    const schema = inlineRefs(JSON.parse(readFileSync(join(src, `${kind}.json`), "utf8"))) as Record<string, unknown>;
    writeFileSync(join(schemaDir, `${kind}.json`), JSON.stringify({ ...schema, $defs: defs }));
  }
});

afterAll(() => schemaDir && rmSync(schemaDir, { recursive: true, force: true }));

function kubeconform(files: string[]): { status: number | null; out: string } {
  const r = spawnSync(KUBECONFORM, ["-strict", "-summary", "-schema-location", join(schemaDir, "{{ .ResourceKind }}{{ .KindSuffix }}.json"), ...files], { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test("every manifest in deploy/k8s is valid Kubernetes 1.33 (kubeconform -strict)", () => {
  const files = readdirSync(MANIFESTS).filter((f) => f.endsWith(".yaml")).map((f) => join(MANIFESTS, f));
  const { status, out } = kubeconform(files);
  expect(out).toContain("Valid: 6, Invalid: 0, Errors: 0, Skipped: 0");
  expect(status).toBe(0);
});

test("the check can fail: a misspelt field and a wrong probe type are rejected", () => {
  const bad = join(schemaDir, "bad.yaml");
  const deployment = readFileSync(join(MANIFESTS, "deployment.yaml"), "utf8");
  writeFileSync(bad, deployment.replace("replicas: 3", "replica: 3").replace(/grpc:\n(\s+)port: 8081/, 'grpc:\n$1port: "health"'));
  const { status, out } = kubeconform([bad]);
  expect(status).not.toBe(0);
  expect(out).toMatch(/replica/);
  expect(out).toContain("Invalid: 1");
});

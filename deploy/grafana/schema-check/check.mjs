// Types a dashboard JSON with Grafana's own published types (@grafana/schema, generated from
// Grafana's CUE kinds) and the TypeScript compiler, strict, so that a field Grafana does not
// know (excess property), a wrong type or an unknown enum value fails. Usage:
//
//     node check.mjs path/to/dashboard.json    # exit 0: it conforms; 1: what does not, and where
//
// Checked: the dashboard as `Dashboard` (panels, rows, variables, annotations), every row as
// `RowPanel`, every panel as `Panel`, its options and fieldConfig.defaults.custom as its panel
// kind's `Options` and `FieldConfig`, and schemaVersion against the one @grafana/schema writes.
// A panel kind missing from KINDS fails: add its types rather than let it pass unchecked.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const ts = require("typescript");
const schema = require("@grafana/schema");
const schemaVersion = require("@grafana/schema/package.json").version;

// Panel type -> the module of its options and field config types in @grafana/schema.
const CFG = "@grafana/schema/dist/esm/raw/composable";
const KINDS = {
  stat: { module: `${CFG}/stat/panelcfg/x/StatPanelCfg_types.gen`, fieldConfig: false },
  timeseries: { module: `${CFG}/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen`, fieldConfig: true },
  "state-timeline": { module: `${CFG}/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen`, fieldConfig: true },
  heatmap: { module: `${CFG}/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen`, fieldConfig: true },
};

// The types use TypeScript enums: a JSON string is never assignable to a string enum, so
// Plain<T> turns every string enum into the union of its values ("background" | ...).
const PRELUDE = `
import type { Dashboard, Panel, RowPanel } from "@grafana/schema";
type Plain<T> = 0 extends 1 & T ? T
  : T extends string ? \`\${T}\`
  : T extends readonly (infer U)[] ? Plain<U>[]
  : T extends object ? { [K in keyof T]: Plain<T[K]> }
  : T;
`;

function emit(doc) {
  const out = [PRELUDE];
  const kinds = new Set();
  const panels = (doc.panels ?? []).flatMap((p) => [p, ...(p.type === "row" ? p.panels ?? [] : [])]);
  for (const p of panels) {
    const name = `panel_${p.id}`;
    const lit = (v) => JSON.stringify(v, null, 2);
    out.push(`// panel ${p.id} ${JSON.stringify(p.title)} (${p.type})`);
    if (p.type === "row") {
      out.push(`export const ${name}_row: Plain<RowPanel> = ${lit(p)};`);
      continue;
    }
    const kind = KINDS[p.type];
    if (kind === undefined) {
      throw new Error(`panel ${p.id} ${JSON.stringify(p.title)}: type ${p.type} has no types in check.mjs KINDS`);
    }
    const alias = `K_${p.type.replace(/\W/g, "_")}`;
    if (!kinds.has(p.type)) {
      kinds.add(p.type);
      out.splice(1, 0, `import type * as ${alias} from "${kind.module}";`);
    }
    out.push(`export const ${name}: Plain<Panel> = ${lit(p)};`);
    out.push(`export const ${name}_options: Plain<${alias}.Options> = ${lit(p.options ?? {})};`);
    const custom = p.fieldConfig?.defaults?.custom;
    if (custom !== undefined) {
      if (!kind.fieldConfig) throw new Error(`panel ${p.id}: ${p.type} has no custom field config`);
      out.push(`export const ${name}_custom: Plain<${alias}.FieldConfig> = ${lit(custom)};`);
    }
  }
  out.push(`// the whole dashboard`);
  out.push(`export const dashboard: Plain<Dashboard> = ${JSON.stringify(doc, null, 2)};`);
  return out.join("\n") + "\n";
}

function typecheck(source) {
  const file = join(HERE, "dashboard.generated.ts"); // virtual: resolves node_modules from here
  const options = {
    strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler, skipLibCheck: true, types: [],
    exactOptionalPropertyTypes: false,
  };
  const host = ts.createCompilerHost(options);
  const base = { getSourceFile: host.getSourceFile, fileExists: host.fileExists, readFile: host.readFile };
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, source, version) : base.getSourceFile(name, version, ...rest);
  host.fileExists = (name) => name === file || base.fileExists(name);
  host.readFile = (name) => (name === file ? source : base.readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program);
}

function report(source, diagnostics) {
  const lines = source.split("\n");
  return diagnostics.map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n    ");
    if (d.file === undefined || d.start === undefined) return message;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    let at = line; // the declaration the error is in: which panel, options or custom config
    while (at > 0 && !lines[at].startsWith("export const")) at -= 1;
    const where = lines[at].replace(/^export const (\w+).*/, "$1");
    let title = at; // the comment above a panel's declarations names it
    while (title > 0 && !lines[title].startsWith("// ")) title -= 1;
    return `${lines[title].slice(3)}: ${where}, line ${line + 1}: ${lines[line].trim()}\n    ${message}`;
  });
}

const path = process.argv[2];
if (!path) {
  console.error("usage: node check.mjs DASHBOARD.json");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(path, "utf8"));
const problems = [];
const wanted = schema.defaultDashboard.schemaVersion;
if (doc.schemaVersion !== wanted) {
  problems.push(`schemaVersion is ${doc.schemaVersion}; @grafana/schema ${schemaVersion} writes ${wanted}`);
}
let source;
try {
  source = emit(doc);
} catch (error) { // a panel this check cannot type: say which, not a stack trace
  console.error(`${path}: ${error.message}`);
  process.exit(1);
}
problems.push(...report(source, typecheck(source)));
if (problems.length) {
  console.error(`${path} does not conform to @grafana/schema ${schemaVersion} (${problems.length}):`);
  for (const p of problems) console.error(`- ${p}`);
  process.exit(1);
}
const rows = (doc.panels ?? []).filter((p) => p.type === "row").length;
const count = (doc.panels ?? []).length - rows;
console.log(`OK: ${path} conforms to @grafana/schema ${schemaVersion} (schemaVersion ${wanted}, ${count} panels, ${rows} rows)`);

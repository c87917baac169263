// Validate an AsyncAPI document with the reference parser: node validate.mjs FILE
// Prints the diagnostics as JSON; exits 1 when any is an error (severity 0).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const { document, diagnostics } = await new Parser().parse(readFileSync(file, "utf8"), {
  source: file,
});
const errors = diagnostics.filter((d) => d.severity === 0);
console.log(JSON.stringify({ valid: Boolean(document) && errors.length === 0, diagnostics }));
process.exit(document && errors.length === 0 ? 0 : 1);

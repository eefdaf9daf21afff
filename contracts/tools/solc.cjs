#!/usr/bin/env node
// Minimal solc CLI over npm solc-js, for py-solc-x's compile_standard.
// Supports `--version` and `--standard-json` (input on stdin, output JSON on stdout only).
'use strict';
const solc = require('solc');

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('usage: solc.cjs --version | --standard-json < input.json\n');
  process.exit(2);
}
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  // Imports are resolved from the committed source tree only; nothing is fetched.
  const path = require('path');
  const fs = require('fs');
  const root = path.resolve(__dirname, '..', 'src');
  const findImports = (p) => {
    const full = path.resolve(root, p);
    if (!full.startsWith(root + path.sep)) return { error: `import outside contracts/src: ${p}` };
    try { return { contents: fs.readFileSync(full, 'utf8') }; } catch (e) { return { error: `not found: ${p}` }; }
  };
  process.stdout.write(solc.compile(input, { import: findImports }));
});

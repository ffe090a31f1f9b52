// Runs a WASI preview 1 module under Node.js's node:wasi, as the peer
// figure for `plasmd run` in docs/PERFORMANCE.md:
//   node scripts/node-wasi-run.mjs MODULE.wasm [ARG...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [module, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: ['job', ...args], env: {}, returnOnExit: true });
const compiled = await WebAssembly.compile(await readFile(module));
const instance = await WebAssembly.instantiate(compiled, wasi.getImportObject());
process.exitCode = wasi.start(instance);

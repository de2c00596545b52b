/**
 * The one-way arrows of docs/architecture.md, read from the source: every relative import (static,
 * dynamic, require, type-only) of every runtime file, checked against what its folder may import.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const ROOT = resolve(__dirname, '../../supernode');

/** Folder -> folders it may import. A service's public module (index.ts) is named `service:index`. */
const ALLOWED: Record<string, string[]> = {
  shared: [],
  protocol: [],
  // The JSON of GET /status, shared by the services that answer it and the console that reads it.
  status: [],
  config: ['shared'],
  metrics: ['shared'],
  stun: ['shared'],
  turn: ['shared', 'stun'],
  mesh: ['shared', 'protocol'],
  node: ['shared', 'protocol', 'config', 'metrics', 'stun', 'turn', 'mesh', 'status'],
  auth: ['shared', 'config', 'metrics', 'turn', 'status'],
  client: ['shared', 'protocol', 'config'],
  local: ['shared', 'config', 'auth:index', 'node:index'],
  drill: ['shared', 'config', 'client', 'local', 'auth:index', 'node:index'],
  // The demo app: its page runs the browser SDK bundle, which build/browser-bundle.ts makes (by path).
  demo: ['build'],
  // The operator console reads the services over HTTP only, never their code.
  web: ['shared', 'config', 'status', 'demo'],
  // The top: the CLI, the release gate and the bundle may start any command through its public module.
  '.': ['shared', 'config', 'client', 'local', 'auth:index', 'node:index', 'drill', 'stun', 'web:index'],
  build: ['.'],
  bin: ['.'],
};

/** Services: others reach them only through index.ts. */
const SERVICES = new Set(['auth', 'node', 'web']);

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return /\.(ts|cjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function folderOf(file: string): string {
  const rel = relative(ROOT, file);
  return rel.includes(sep) ? rel.split(sep)[0] : '.';
}

/** The layer name of an import target: its folder, or `service:index` for a service's public module. */
function targetOf(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const target = resolve(dirname(file), specifier);
  const rel = relative(ROOT, target);
  if (rel.startsWith('..')) return `outside:${rel}`;
  if (SERVICES.has(rel)) return `${rel}:index`;
  const folder = rel.includes(sep) ? rel.split(sep)[0] : '.';
  if (SERVICES.has(folder) && rel === `${folder}${sep}index`) return `${folder}:index`;
  return folder;
}

const IMPORT = /(?:\bfrom\s*|\brequire\(\s*|\bimport\(\s*)'([^']+)'/g;

const files = filesUnder(ROOT);
const edges = files.flatMap((file) => {
  const source = readFileSync(file, 'utf8');
  return [...source.matchAll(IMPORT)]
    .map((match) => ({
      file: relative(ROOT, file),
      from: folderOf(file),
      to: targetOf(file, match[1]),
      specifier: match[1],
    }))
    .filter((edge): edge is typeof edge & { to: string } => edge.to !== undefined);
});

test('the checker sees the runtime: files of every folder and their imports', () => {
  const folders = new Set(files.map(folderOf));
  for (const folder of Object.keys(ALLOWED)) expect(folders).toContain(folder);
  // A new folder must say what it may import before its imports are checked.
  for (const folder of folders) expect(Object.keys(ALLOWED)).toContain(folder);
  expect(edges.length).toBeGreaterThan(100);
  // A known arrow, so a broken parser cannot pass by finding nothing.
  expect(edges).toContainEqual(
    expect.objectContaining({ file: join('node', 'server.ts'), to: 'mesh', specifier: '../mesh/mesh' }),
  );
});

test.each(Object.keys(ALLOWED))('%s imports only what it may', (folder) => {
  const allowed = new Set([...ALLOWED[folder], folder, ...(SERVICES.has(folder) ? [`${folder}:index`] : [])]);
  // A service may of course use its own files however it likes; a folder reaching a service's
  // internals shows up here as the bare service name.
  const wrong = edges
    .filter((edge) => edge.from === folder && !allowed.has(edge.to))
    .map((edge) => `${edge.file} -> ${edge.specifier} (${edge.to})`);
  expect(wrong).toEqual([]);
});

test('no service imports another service, not even its public module', () => {
  const crossing = edges.filter(
    (edge) => SERVICES.has(edge.from) && edge.to.includes(':index') && !edge.to.startsWith(`${edge.from}:`),
  );
  expect(crossing).toEqual([]);
});

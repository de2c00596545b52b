/**
 * Just enough Markdown for the docs tests: sections by heading, pipe tables, code blocks and inline
 * code. Not a general parser: it reads docs/*.md as this repository writes them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function readDoc(name: string): string {
  return readFileSync(join(__dirname, '../../docs', name), 'utf8');
}

/** The text under `heading` (the whole heading line, e.g. '## Error codes'), up to the next heading of its level or above. */
export function section(markdown: string, heading: string): string {
  const lines = markdown.split('\n');
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`no heading ${JSON.stringify(heading)}`);
  const level = heading.indexOf(' ');
  let end = start + 1;
  let fenced = false;
  for (; end < lines.length; end++) {
    if (lines[end].startsWith('```')) fenced = !fenced;
    const match = /^(#+) /.exec(lines[end]);
    if (!fenced && match && match[1].length <= level) break;
  }
  return lines.slice(start + 1, end).join('\n');
}

/** Headings of one level inside a text, without the #s. */
export function headings(text: string, level: number): string[] {
  const prefix = `${'#'.repeat(level)} `;
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length).trim());
}

export interface Table {
  header: string[];
  rows: string[][];
}

/** The first pipe table in `text`. Cells are trimmed; a cell may not contain a pipe. */
export function firstTable(text: string): Table {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.startsWith('|'));
  if (start < 0) throw new Error('no table');
  const split = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((cell) => cell.trim());
  const header = split(lines[start]);
  const rows: string[][] = [];
  for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) rows.push(split(lines[i]));
  return { header, rows };
}

/** The column named `name` of a table row. */
export function cell(table: Table, row: string[], name: string): string {
  const index = table.header.indexOf(name);
  if (index < 0) throw new Error(`no column ${name} in ${table.header.join(', ')}`);
  return row[index];
}

/** Contents of fenced code blocks of one language. */
export function codeBlocks(text: string, language: string): string[] {
  const out: string[] = [];
  const pattern = new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\``, 'gm');
  for (const match of text.matchAll(pattern)) out.push(match[1]);
  return out;
}

/** Inline code spans (`...`), fenced blocks left out. */
export function inlineCode(text: string): string[] {
  const unfenced = text.replace(/^```[\s\S]*?^```/gm, '');
  return [...unfenced.matchAll(/`([^`\n]+)`/g)].map((match) => match[1]);
}

/**
 * The shape of a JSON value, to compare a documented example with a real message: the keys of
 * objects, in order, recursively; arrays by their first element; other values by type.
 */
export function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
  if (value !== null && typeof value === 'object')
    return Object.entries(value).map(([key, inner]) => [key, shapeOf(inner)]);
  return value === null ? 'null' : typeof value;
}

/** The `GET /path` and `POST /path` items of a table cell, as Fastify's hasRoute() takes them. */
export function routesIn(text: string): Array<{ method: string; url: string }> {
  return inlineCode(text)
    .map((code) => /^(GET|POST) (\/\S*)$/.exec(code))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ method: match[1], url: match[2] }));
}

/** GitHub's anchors for the headings of a document. */
export function anchors(markdown: string): Set<string> {
  const unfenced = markdown.replace(/^```[\s\S]*?^```/gm, '');
  return new Set(
    [...unfenced.matchAll(/^#{1,6} (.+)$/gm)].map((match) =>
      match[1]
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

/**
 * Links of `name` into docs/ that do not resolve: a missing file, or an anchor with no heading.
 * External links are not checked.
 */
export function brokenLinks(name: string): string[] {
  const text = readDoc(name).replace(/^```[\s\S]*?^```/gm, '');
  const broken: string[] = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target)) continue;
    const [file, anchor] = target.split('#');
    let doc: string;
    try {
      doc = file ? readDoc(file) : readDoc(name);
    } catch {
      broken.push(target);
      continue;
    }
    if (anchor !== undefined && !anchors(doc).has(anchor)) broken.push(target);
  }
  return broken;
}

/**
 * The last drill's charts: the newest storm-*.svg and crash-*.svg the drills wrote (supernode/drill/,
 * DRILL_OUT). Only names listed here are ever served, so a request cannot name another file.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** What the drills name their charts: `storm-<stamp>.svg`, `crash-<stamp>.svg`. */
const CHART_NAME = /^(storm|crash)-[A-Za-z0-9._-]{1,100}\.svg$/;
/** A drill chart is some tens of KB. */
const MAX_CHART_BYTES = 4 * 1024 * 1024;

export interface Chart {
  drill: 'storm' | 'crash';
  name: string;
  /** When the drill wrote it (ISO 8601). */
  writtenAt: string;
  /** Where the console serves it. */
  url: string;
}

/** The newest chart of each drill in `dir`; none if the directory does not exist (no drill run yet). */
export async function newestCharts(dir: string): Promise<Chart[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const newest = new Map<'storm' | 'crash', { name: string; mtimeMs: number }>();
  for (const name of names) {
    const match = CHART_NAME.exec(name);
    if (!match) continue;
    const drill = match[1] as 'storm' | 'crash';
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (!info?.isFile()) continue;
    const best = newest.get(drill);
    if (!best || info.mtimeMs > best.mtimeMs) newest.set(drill, { name, mtimeMs: info.mtimeMs });
  }
  return (['storm', 'crash'] as const).flatMap((drill) => {
    const found = newest.get(drill);
    return found
      ? [
          {
            drill,
            name: found.name,
            writtenAt: new Date(found.mtimeMs).toISOString(),
            url: `/console/charts/${encodeURIComponent(found.name)}`,
          },
        ]
      : [];
  });
}

/** The SVG text of `name` if it is one of the newest charts, else undefined. */
export async function readChart(dir: string, name: string): Promise<string | undefined> {
  const listed = (await newestCharts(dir)).find((chart) => chart.name === name);
  if (!listed) return undefined;
  const path = join(dir, listed.name);
  const info = await stat(path).catch(() => undefined);
  if (!info || info.size > MAX_CHART_BYTES) return undefined;
  return readFile(path, 'utf8');
}

/** Output of the drills: a progress bar while they run, a table at the end, an SVG chart for the docs. */

export interface Series {
  label: string;
  color: string;
  /** [seconds since the event, value] */
  points: [number, number][];
}

/** One line, redrawn in place on a terminal; plain lines elsewhere (CI logs) at most once a second. */
export class ProgressBar {
  private lastPlain = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly width = 30,
  ) {}

  update(label: string, done: number, total: number, detail = ''): void {
    const share = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(share * this.width);
    const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}] ${(share * 100).toFixed(1).padStart(5)}% ${detail}`;
    if (this.out.isTTY) {
      this.out.write(
        `\r${line.slice(0, (this.out.columns ?? 120) - 1).padEnd((this.out.columns ?? 120) - 1)}`,
      );
    } else if (Date.now() - this.lastPlain >= 1000) {
      this.lastPlain = Date.now();
      this.out.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}

/** A plain-text table with aligned columns. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

function escapeXml(text: string): string {
  return text.replace(
    /[<>&"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] as string,
  );
}

/** A line chart as a standalone SVG: time on x, one polyline per series, axes with a few ticks. */
export function lineChartSvg(options: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}): string {
  const width = 760;
  const height = 360;
  const pad = { left: 70, right: 20, top: 40, bottom: 50 };
  const all = options.series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map(([x]) => x));
  const maxY = Math.max(1, ...all.map(([, y]) => y));
  const sx = (x: number) => pad.left + (x / maxX) * (width - pad.left - pad.right);
  const sy = (y: number) => height - pad.bottom - (y / maxY) * (height - pad.top - pad.bottom);
  const ticks = (max: number) => Array.from({ length: 6 }, (_, i) => (max * i) / 5);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12" role="img">`,
    `<title>${escapeXml(options.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`,
    `<line x1="${pad.left}" y1="${sy(0)}" x2="${width - pad.right}" y2="${sy(0)}" stroke="#333"/>`,
    `<line x1="${pad.left}" y1="${sy(0)}" x2="${pad.left}" y2="${pad.top}" stroke="#333"/>`,
  ];
  for (const x of ticks(maxX)) {
    parts.push(
      `<line x1="${sx(x)}" y1="${sy(0)}" x2="${sx(x)}" y2="${sy(0) + 5}" stroke="#333"/>`,
      `<text x="${sx(x)}" y="${sy(0) + 18}" text-anchor="middle">${x < 10 ? x.toFixed(1) : Math.round(x)}</text>`,
    );
  }
  for (const y of ticks(maxY)) {
    parts.push(
      `<line x1="${pad.left}" y1="${sy(y)}" x2="${width - pad.right}" y2="${sy(y)}" stroke="#eee"/>`,
      `<text x="${pad.left - 6}" y="${sy(y) + 4}" text-anchor="end">${Math.round(y)}</text>`,
    );
  }
  parts.push(
    `<text x="${(pad.left + width - pad.right) / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text x="16" y="${(pad.top + height - pad.bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(pad.top + height - pad.bottom) / 2})">${escapeXml(options.yLabel)}</text>`,
  );
  options.series.forEach((series, i) => {
    const points = series.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline fill="none" stroke="${series.color}" stroke-width="2" points="${points}"/>`,
      `<rect x="${pad.left + 12}" y="${pad.top + 8 + i * 18}" width="12" height="3" fill="${series.color}"/>`,
      `<text x="${pad.left + 30}" y="${pad.top + 13 + i * 18}">${escapeXml(series.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

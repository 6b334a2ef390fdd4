/**
 * The bench chart: one horizontal bar per figure, its ratio on a log axis (1 = the baseline or
 * peer it is measured against). Plain SVG written by hand, no dependencies.
 */

/** One bench figure: `ratio` is value / limit, both measured in the same run. */
export interface Figure {
  readonly figure: string;
  readonly transport: string;
  readonly value: number;
  readonly unit: string;
  readonly limit: string;
  readonly ratio: number;
}

const LOG_MIN = -4;
const LOG_MAX = 2;
const ROW = 16;
const LABEL_W = 470;
const PLOT_W = 560;
const TOP = 64;
const RIGHT_W = 70;

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Lower is better for latencies and memory; there the bar shows the overhead over the baseline. */
const lowerIsBetter = (f: Figure) => f.unit === "us" || f.unit === "MiB";
/** Ratios against a peer (the limit names the peer), rather than a raw baseline. */
const againstPeer = (f: Figure) => /vgi-rpc/.test(f.limit);

const x = (ratio: number) => {
  const l = Math.min(LOG_MAX, Math.max(LOG_MIN, Math.log10(Math.max(ratio, 10 ** LOG_MIN))));
  return LABEL_W + ((l - LOG_MIN) / (LOG_MAX - LOG_MIN)) * PLOT_W;
};

/** Renders every figure's ratio as an SVG document. */
export function writeChart(figures: readonly Figure[], title: string): string {
  const height = TOP + figures.length * ROW + 40;
  const width = LABEL_W + PLOT_W + RIGHT_W;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="8" y="36">ratio = value / limit on a log axis; blue: vs a raw baseline (higher is better), green: quiver / peer (higher is better), grey: latency or RSS vs baseline (lower is better)</text>`,
  ];
  for (let d = LOG_MIN; d <= LOG_MAX; d++) {
    const gx = x(10 ** d);
    out.push(
      `<line x1="${gx}" y1="${TOP - 8}" x2="${gx}" y2="${TOP + figures.length * ROW}" stroke="${d === 0 ? "#c00" : "#ddd"}" stroke-width="${d === 0 ? 1.5 : 1}"${d === 0 ? "" : ' stroke-dasharray="3,3"'}/>`,
      `<text x="${gx}" y="${TOP - 12}" text-anchor="middle">${d >= 0 ? 10 ** d : `1e${d}`}</text>`,
    );
  }
  figures.forEach((f, i) => {
    const y = TOP + i * ROW;
    const color = lowerIsBetter(f) ? "#999" : againstPeer(f) ? "#2e8b57" : "#4682b4";
    const x0 = x(10 ** LOG_MIN);
    const x1 = x(f.ratio);
    const label = `${f.figure} [${f.transport}]${againstPeer(f) ? ` vs ${f.limit.replace(/ \(.*\)$/, "")}` : ""}`;
    out.push(
      `<text x="${LABEL_W - 6}" y="${y + ROW - 4}" text-anchor="end">${esc(label)}</text>`,
      `<rect x="${x0}" y="${y + 2}" width="${Math.max(1, x1 - x0)}" height="${ROW - 4}" fill="${color}"><title>${esc(`${f.figure} ${f.transport}: ${f.value} ${f.unit}; ratio ${f.ratio} vs ${f.limit}`)}</title></rect>`,
      `<text x="${LABEL_W + PLOT_W + 6}" y="${y + ROW - 4}">${Number.isFinite(f.ratio) ? f.ratio.toPrecision(3) : "n/a"}</text>`,
    );
  });
  out.push("</svg>", "");
  return out.join("\n");
}

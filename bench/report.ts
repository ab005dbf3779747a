import type { Summary } from './stats.ts'

/** A row of the printed table: one figure per target, medians with min–max. */
export interface Row {
  scenario: string
  metric: string
  unit: string
  /** Higher is better (throughput) or lower (latency, memory): decides nothing here, documents the ratio. */
  better: 'higher' | 'lower'
  values: Partial<Record<string, Summary>>
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '–'
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US')
  if (Math.abs(n) >= 100) return n.toFixed(0)
  if (Math.abs(n) >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

export function cell(s: Summary | undefined): string {
  if (!s) return 'n/a'
  return s.runs.length > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median)
}

export function ratio(a: Summary | undefined, b: Summary | undefined): number | undefined {
  if (!a || !b || !Number.isFinite(a.median) || !Number.isFinite(b.median) || b.median === 0) return undefined
  return a.median / b.median
}

/** A Markdown table (it reads fine in a terminal too, and pastes into docs/performance.md). */
export function table(rows: Row[], targets: string[]): string {
  const withBaseline = targets.includes('baseline')
  const head = ['scenario', 'metric', ...targets, 'ours/aedes', 'ours/mosquitto', ...(withBaseline ? ['baseline/aedes'] : [])]
  const lines = [head, head.map(() => '---')]
  const fixed = (n: number | undefined) => (n === undefined ? '–' : n.toFixed(2))
  for (const r of rows) {
    const ra = ratio(r.values.mqfn, r.values['plain-aedes'])
    const rm = ratio(r.values.mqfn, r.values.mosquitto)
    const rb = withBaseline ? [fixed(ratio(r.values.baseline, r.values['plain-aedes']))] : []
    lines.push([r.scenario, `${r.metric} (${r.unit})`, ...targets.map((t) => cell(r.values[t])), fixed(ra), fixed(rm), ...rb])
  }
  return lines.map((l) => `| ${l.join(' | ')} |`).join('\n')
}

/** Medians over the rounds, the comparison table of a workload, and the lead's targets. */
import { PEERS, type Variant } from './config'
import type { Measurement } from './load'

export interface Summary {
  variant: Variant
  requestsPerSecond: number
  /** The slowest and fastest round: how much the machine's noise moved the median. */
  range: [number, number]
  p99Ms: number
  /** Median server CPU time per request: steadier than req/s when the cores are shared. */
  cpuMicrosPerRequest: number
  non2xx: number
  errors: number
}

export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** One row per variant: median req/s and p99 over the rounds, non-2xx and errors summed. */
export function summarize (variant: Variant, rounds: readonly Measurement[]): Summary {
  return {
    variant,
    requestsPerSecond: median(rounds.map((m) => m.requestsPerSecond)),
    range: [Math.min(...rounds.map((m) => m.requestsPerSecond)), Math.max(...rounds.map((m) => m.requestsPerSecond))],
    p99Ms: median(rounds.map((m) => m.p99Ms)),
    cpuMicrosPerRequest: median(rounds.map((m) => m.cpuMicrosPerRequest)),
    non2xx: rounds.reduce((sum, m) => sum + m.non2xx, 0),
    errors: rounds.reduce((sum, m) => sum + m.errors, 0)
  }
}

function find (rows: readonly Summary[], variant: Variant): Summary | undefined {
  return rows.find((row) => row.variant === variant)
}

function bestPeer (rows: readonly Summary[]): Summary | undefined {
  const peers = rows.filter((row) => PEERS.includes(row.variant))
  return peers.length === 0 ? undefined : peers.reduce((best, row) => row.requestsPerSecond > best.requestsPerSecond ? row : best)
}

function ratio (value: number, base: number | undefined): string {
  return base === undefined ? '-' : (value / base).toFixed(2)
}

/** The table of one workload, as text. */
export function formatTable (rows: readonly Summary[]): string {
  const none = find(rows, 'none')
  const floor = find(rows, 'floor')
  const peer = bestPeer(rows)
  const header = ['variant', 'req/s', 'rounds min-max', 'p99 ms', 'non-2xx', 'x none', 'p99 x none', 'x best peer', 'x floor', 'cpu us/req']
  const lines = rows.map((row) => [
    row.variant,
    Math.round(row.requestsPerSecond).toString(),
    row.range.map(Math.round).join('-'),
    row.p99Ms.toFixed(2),
    row.errors > 0 ? `${row.non2xx} (+${row.errors} errors)` : row.non2xx.toString(),
    ratio(row.requestsPerSecond, none?.requestsPerSecond),
    ratio(row.p99Ms, none?.p99Ms),
    ratio(row.requestsPerSecond, peer?.requestsPerSecond),
    ratio(row.requestsPerSecond, floor?.requestsPerSecond),
    row.cpuMicrosPerRequest.toFixed(0)
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i].length)))
  const format = (cells: string[]): string => cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join('  ')
  const footer = peer === undefined ? '' : `\nbest peer: ${peer.variant}`
  return [format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(format)].join('\n') + footer
}

export interface TargetCheck {
  target: string
  met: boolean
  detail: string
}

/** The lead's targets for the workload, when the variants they compare were measured. */
export function checkTargets (workload: string, rows: readonly Summary[]): TargetCheck[] {
  const plugin = find(rows, 'plugin')
  if (plugin === undefined) return []
  const checks: TargetCheck[] = []
  const none = find(rows, 'none')
  const floor = find(rows, 'floor')
  const peer = bestPeer(rows)
  if (workload === 'a' && none !== undefined) {
    const throughput = plugin.requestsPerSecond / none.requestsPerSecond
    const latency = plugin.p99Ms / none.p99Ms
    checks.push({ target: 'plugin >= 0.90 x none req/s', met: throughput >= 0.9, detail: `${throughput.toFixed(2)}${byCpu(plugin, none)}` })
    checks.push({ target: 'plugin p99 <= 1.2 x none p99', met: latency <= 1.2, detail: `${latency.toFixed(2)} (${plugin.p99Ms} ms beside ${none.p99Ms} ms)` })
  }
  const withEvents = find(rows, 'plugin+events')
  if (workload === 'a' && withEvents !== undefined) {
    // Listening to every event costs at most this; not listening, a property read per request.
    const share = withEvents.requestsPerSecond / plugin.requestsPerSecond
    checks.push({ target: 'plugin+events >= 0.95 x plugin req/s', met: share >= 0.95, detail: `${share.toFixed(2)}${byCpu(withEvents, plugin)}` })
  }
  const fastJwtCache = find(rows, 'fast-jwt cache')
  if (workload === 'a' && fastJwtCache !== undefined) {
    const lead = plugin.requestsPerSecond / fastJwtCache.requestsPerSecond
    checks.push({ target: "plugin's token cache >= fast-jwt's cache", met: lead >= 1, detail: `${lead.toFixed(2)}${byCpu(plugin, fastJwtCache)}` })
  }
  const withClaims = find(rows, 'plugin+claims')
  if (workload === 'b' && withClaims !== undefined) {
    // A schema of five claims, checked once per distinct token, beside no schema.
    const share = withClaims.requestsPerSecond / plugin.requestsPerSecond
    checks.push({ target: 'plugin+claims >= 0.97 x plugin req/s', met: share >= 0.97, detail: `${share.toFixed(2)}${byCpu(withClaims, plugin)}` })
  }
  if (workload === 'b') {
    if (floor !== undefined) {
      const share = plugin.requestsPerSecond / floor.requestsPerSecond
      checks.push({ target: 'plugin >= 0.85 x floor req/s', met: share >= 0.85, detail: `${share.toFixed(2)}${byCpu(plugin, floor)}` })
    }
    if (peer !== undefined) {
      const lead = plugin.requestsPerSecond / peer.requestsPerSecond
      checks.push({ target: 'plugin >= 1.05 x the best peer req/s', met: lead >= 1.05, detail: `${lead.toFixed(2)} x ${peer.variant}${byCpu(plugin, peer)}` })
    }
  }
  return checks
}

/** The same ratio from server CPU per request, which other load on the machine disturbs less. */
function byCpu (plugin: Summary, other: Summary): string {
  return ` (by server CPU per request: ${(other.cpuMicrosPerRequest / plugin.cpuMicrosPerRequest).toFixed(2)})`
}

export function formatTargets (checks: readonly TargetCheck[]): string {
  return checks.map(({ target, met, detail }) => `target ${met ? 'met   ' : 'MISSED'}  ${target}: ${detail}`).join('\n')
}

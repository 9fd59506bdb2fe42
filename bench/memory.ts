/**
 * The memory step: distinct valid tokens, each sent once, to a fresh plugin server, whose heap
 * (after a full collection) is read before and at stages along the way. The token cache holds at
 * most 1000 entries by default, so the heap should stop growing once it is full.
 */
import { HEAP_ROUTE } from './config'
import { measure, TokenCycle } from './load'
import { startServer } from './processes'

export interface HeapReading {
  tokensSent: number
  heapUsedMb: number
  non2xx: number
}

async function heapUsedMb (url: string): Promise<number> {
  const response = await fetch(`${url}${HEAP_ROUTE}`)
  const { heapUsed } = await response.json() as { heapUsed: number }
  return heapUsed / (1024 * 1024)
}

/** Stages at which the heap is read: the cache's capacity, a tenth of the tokens, all of them. */
function stagesFor (total: number, cacheSize: number): number[] {
  return [...new Set([cacheSize, Math.round(total / 10), total])].filter((n) => n > 0 && n <= total).sort((a, b) => a - b)
}

export async function measureHeap (jwksUri: string, tokens: readonly string[], connections: number, cacheSize = 1000): Promise<HeapReading[]> {
  const server = await startServer({ variant: 'plugin', jwksUri, resolveUser: false }, ['--expose-gc'])
  try {
    const readings: HeapReading[] = [{ tokensSent: 0, heapUsedMb: await heapUsedMb(server.url), non2xx: 0 }]
    let sent = 0
    for (const stage of stagesFor(tokens.length, cacheSize)) {
      const batch = new TokenCycle(tokens.slice(sent, stage))
      const { non2xx, errors } = await measure(server.url, batch, { connections, duration: 0, amount: stage - sent })
      if (errors > 0) throw new Error(`memory step: ${errors} connection errors`)
      sent = stage
      readings.push({ tokensSent: sent, heapUsedMb: await heapUsedMb(server.url), non2xx })
    }
    return readings
  } finally {
    await server.stop()
  }
}

export function formatHeap (readings: readonly HeapReading[]): string {
  const lines = readings.map(({ tokensSent, heapUsedMb, non2xx }) =>
    `${tokensSent.toString().padStart(11)}  ${heapUsedMb.toFixed(1).padStart(12)}  ${non2xx.toString().padStart(7)}`)
  return ['tokens sent  heap used MB  non-2xx', '-----------  ------------  -------', ...lines].join('\n')
}

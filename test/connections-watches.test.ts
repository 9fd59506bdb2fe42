/**
 * The watches' structures on their own: the heap keeps the earliest on top through any mix of
 * insertions, removals and moves; the registry's memory per watch is bounded and all of it is
 * given back.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import type { CognitoClaims } from '../index'
import { DueHeap, type Due } from '../lib/connections/heap'
import { Watches, type Watched } from '../lib/connections/watches'

t.test('the heap gives its items in time order, whatever was taken out or moved', async (t) => {
  let seed = 7
  const random = (): number => { seed = (seed * 48271) % 2147483647; return seed / 2147483647 }
  const heap = new DueHeap<Due & { id: number }>()
  const inside = new Set<Due & { id: number }>()
  for (let i = 0; i < 2000; i++) {
    const item = { at: Math.floor(random() * 500), slot: -1, id: i }
    heap.push(item)
    inside.add(item)
  }
  for (const item of [...inside]) {
    const roll = random()
    if (roll < 0.3) {
      heap.remove(item)
      inside.delete(item)
    } else if (roll < 0.6) {
      heap.move(item, Math.floor(random() * 500))
    }
  }
  const removed = { at: 0, slot: -1, id: -1 }
  heap.remove(removed)
  t.equal(heap.size, inside.size, 'removing an item that is out changes nothing')
  const order: number[] = []
  for (let top = heap.peek(); top !== undefined; top = heap.peek()) {
    order.push(top.at)
    heap.remove(top)
  }
  t.equal(order.length, inside.size)
  t.same(order, [...order].sort((a, b) => a - b))
})

function gc (): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

t.test('10,000 watches: bounded memory per watch, all of it given back', async (t) => {
  const watches = new Watches({ poolTtlMs: 0, log: console as never })
  const make = (i: number): Watched => ({
    at: Date.now() + 3_600_000 + i,
    slot: -1,
    claims: { sub: `user-${i % 100}`, iss: 'https://issuer', origin_jti: `o-${i}`, jti: `j-${i}` } as unknown as CognitoClaims,
    issuer: 'https://issuer',
    pool: { userPoolId: 'eu-west-1_pool' },
    sessions: [`o-${i}`, `j-${i}`],
    end: () => {}
  })
  gc()
  const before = process.memoryUsage().heapUsed
  let all: Watched[] = []
  for (let i = 0; i < 10_000; i++) {
    const watch = make(i)
    all.push(watch)
    watches.add(watch)
  }
  gc()
  const perWatch = (process.memoryUsage().heapUsed - before) / 10_000
  t.ok(perWatch < 2048, `about ${Math.round(perWatch)} bytes a watch, claims included`)
  t.same(watches.sizes(), { watches: 10_000, sessions: 20_000, users: 100, pools: 0, timers: 1 })
  for (const watch of all) t.equal(watches.remove(watch), true)
  all = []
  t.same(watches.sizes(), { watches: 0, sessions: 0, users: 0, pools: 0, timers: 0 })
  watches.close()
})

t.test('a pool removed while none of its connections is watched: nothing else is touched', async (t) => {
  const ended: string[] = []
  const watches = new Watches({ poolTtlMs: 60_000, recheck: async () => true, log: console as never })
  const watch: Watched = {
    at: Date.now() + 3_600_000,
    slot: -1,
    claims: { sub: 'ana', iss: 'https://issuer-a', origin_jti: 'o-1' } as unknown as CognitoClaims,
    issuer: 'https://issuer-a',
    pool: { userPoolId: 'eu-west-1_a' },
    sessions: ['o-1'],
    end: (reason) => ended.push(reason)
  }
  watches.add(watch)
  watches.poolRemoved('https://issuer-b')
  t.same(ended, [])
  t.same(watches.sizes(), { watches: 1, sessions: 1, users: 1, pools: 1, timers: 1 })
  watches.poolRemoved('https://issuer-a')
  t.same(ended, ['pool-removed'])
  t.same(watches.sizes(), { watches: 0, sessions: 0, users: 0, pools: 0, timers: 0 })
  watches.close()
})

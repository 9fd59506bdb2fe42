/**
 * A fake clock for tests in which hours pass while sockets and timers stay real. `Date` is faked,
 * and `performance.now()` follows it: get-jwks keeps its keys in an lru-cache, which measures their
 * TTL with `performance.now()`. lru-cache reuses a reading for up to 1 ms of real time, so after the
 * clock moves, `settle()` lets that reading go before the next request.
 */
import FakeTimers from '@sinonjs/fake-timers'

export interface TestClock {
  readonly now: number
  tick: (ms: number) => void
  setSystemTime: (ms: number) => void
  /** Resolves once every cache sees the time the clock was moved to. */
  settle: () => Promise<void>
}

interface Teardown {
  teardown: (fn: () => void) => void
}

export function fakeClock (t: Teardown, now = Date.now()): TestClock {
  const clock = FakeTimers.install({ toFake: ['Date'], now })
  const start = clock.now
  const perfStart = performance.now()
  performance.now = () => perfStart + (clock.now - start)
  let moved = false
  t.teardown(() => {
    clock.uninstall()
    delete (performance as { now?: unknown }).now
  })
  return {
    get now () { return clock.now },
    tick: (ms) => {
      clock.tick(ms)
      moved = true
    },
    setSystemTime: (ms) => {
      clock.setSystemTime(ms)
      moved = true
    },
    settle: async () => {
      if (!moved) return
      moved = false
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  }
}

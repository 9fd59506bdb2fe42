/**
 * The revocation list of a single process (`revocation: { store: 'memory' }`): the replica is
 * all there is, so it is always in sync and a write has nowhere else to go.
 */
import { publishRevocation, wantsRevocationEvents } from '../events'
import type { RevocationReplica, RevocationStore } from './list'
import type { RevocationSettings } from './options'

export function createStore (_settings: RevocationSettings, replica: RevocationReplica): RevocationStore {
  const started = Date.now()
  return {
    // Nothing to load: the one sync there is, reported as the Redis store reports its own.
    start: async () => {
      if (wantsRevocationEvents()) publishRevocation({ event: 'synced', entries: replica.size(), durationMs: 0 })
    },
    write: async () => {},
    close: async () => {},
    staleRefusal: () => undefined,
    syncStats: () => ({ inSync: true, since: started, lastSync: started, lastError: null, pending: 0 })
  }
}

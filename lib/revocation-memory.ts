/**
 * The revocation list of a single process (`revocation: { store: 'memory' }`): the replica is
 * all there is, so it is always in sync and a write has nowhere else to go.
 */
import type { RevocationStore } from './revocation'

export function createStore (): RevocationStore {
  const started = Date.now()
  return {
    start: async () => {},
    write: async () => {},
    close: async () => {},
    staleRefusal: () => undefined,
    syncStats: () => ({ inSync: true, since: started, lastSync: started, lastError: null })
  }
}

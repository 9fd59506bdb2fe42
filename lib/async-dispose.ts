/**
 * `await using` support for objects that are closed with `close()`. The key it uses,
 * `Symbol.asyncDispose`, exists from Node.js 20.4 on; where the runtime lacks it there is nothing
 * to define, and `close()` still closes.
 */
export function closeOnAsyncDispose (prototype: { close: () => Promise<void> }, asyncDispose: symbol | undefined): void {
  if (asyncDispose === undefined) return
  Object.defineProperty(prototype, asyncDispose, {
    value: async function dispose (this: { close: () => Promise<void> }): Promise<void> {
      await this.close()
    },
    writable: true,
    configurable: true
  })
}

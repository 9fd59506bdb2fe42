/**
 * A binary min-heap of things due at a time: the earliest is at the top, an insertion or a
 * removal costs O(log n). Each item keeps its own place (`slot`) so that it can be taken out or
 * moved without a search: ten thousand connections cost one timer, not ten thousand.
 */
export interface Due {
  /** When it is due (epoch milliseconds). */
  at: number
  /** Its place in the heap; -1 when out of it. */
  slot: number
}

export class DueHeap<T extends Due> {
  private readonly items: T[] = []

  get size (): number {
    return this.items.length
  }

  /** The earliest item, if any. */
  peek (): T | undefined {
    return this.items[0]
  }

  push (item: T): void {
    item.slot = this.items.length
    this.items.push(item)
    this.up(item.slot)
  }

  /** Takes the item out, wherever it is; nothing when it is out already. */
  remove (item: T): void {
    const slot = item.slot
    if (slot < 0) return
    item.slot = -1
    const last = this.items.pop() as T
    if (last === item) return
    this.items[slot] = last
    last.slot = slot
    this.down(slot)
    this.up(last.slot)
  }

  /** Moves the item to its new time (in the heap or not). */
  move (item: T, at: number): void {
    this.remove(item)
    item.at = at
    this.push(item)
  }

  private up (slot: number): void {
    const { items } = this
    const item = items[slot]
    while (slot > 0) {
      const parent = (slot - 1) >> 1
      if (items[parent].at <= item.at) break
      items[slot] = items[parent]
      items[slot].slot = slot
      slot = parent
    }
    items[slot] = item
    item.slot = slot
  }

  private down (slot: number): void {
    const { items } = this
    const item = items[slot]
    const length = items.length
    for (;;) {
      const left = slot * 2 + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && items[right].at < items[left].at ? right : left
      if (items[child].at >= item.at) break
      items[slot] = items[child]
      items[slot].slot = slot
      slot = child
    }
    items[slot] = item
    item.slot = slot
  }
}

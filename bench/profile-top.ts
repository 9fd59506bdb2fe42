/**
 * Where a server's CPU time went, from a V8 CPU profile (as written by `node --cpu-prof`, e.g. by
 * `npm run bench -- --cpu-prof plugin`):
 *   node --import tsx bench/profile-top.ts <file.cpuprofile> [count] [--all]
 * Prints the functions with the most self time, then the project's own functions
 * by inclusive time. Samples before the first HTTP request are left out (start-up and module
 * loading are not the hot path) unless `--all` is given.
 */
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** A frame every HTTP request goes through: the first sample under it marks the end of start-up. */
const FIRST_REQUEST_FRAME = 'parserOnHeadersComplete'
const PROJECT_CODE = /(^|\/)(lib\/[^/]+|index)\.ts/

function frameName ({ callFrame: { functionName, url, lineNumber } }: ProfileNode): string {
  const path = relative(process.cwd(), url.replace(/^file:\/\//, ''))
  // Line numbers of TypeScript files are those of tsx's output, which mean nothing in the source.
  const where = url === '' ? '' : path.endsWith('.ts') ? ` ${path}` : ` ${path}:${lineNumber + 1}`
  return `${functionName === '' ? '(anonymous)' : functionName}${where}`
}

function table (title: string, rows: Array<[string, number]>, busyUs: number, count: number): void {
  console.log(`\n${title}`)
  for (const [name, us] of rows.sort((a, b) => b[1] - a[1]).slice(0, count)) {
    console.log(`${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`)
  }
}

function main (): void {
  const args = process.argv.slice(2)
  const all = args.includes('--all')
  const [file, countArg = '20'] = args.filter((arg) => arg !== '--all')
  if (file === undefined) throw new Error('usage: profile-top.ts <file.cpuprofile> [count] [--all]')
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
  const stackOf = (id: number): ProfileNode[] => {
    const stack: ProfileNode[] = []
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) stack.push(byId.get(at) as ProfileNode)
    return stack
  }

  const selfUs = new Map<string, number>()
  const inclusiveUs = new Map<string, number>()
  let busyUs = 0
  let started = all
  profile.samples.forEach((id, i) => {
    const stack = stackOf(id)
    started ||= stack.some((node) => node.callFrame.functionName === FIRST_REQUEST_FRAME)
    const self = stack[0]
    if (!started || self.callFrame.functionName === '(idle)') return
    const delta = profile.timeDeltas[i] ?? 0
    busyUs += delta
    selfUs.set(frameName(self), (selfUs.get(frameName(self)) ?? 0) + delta)
    for (const name of new Set(stack.filter((node) => PROJECT_CODE.test(node.callFrame.url)).map(frameName))) {
      inclusiveUs.set(name, (inclusiveUs.get(name) ?? 0) + delta)
    }
  })
  const count = Number(countArg)
  console.log(`busy ${(busyUs / 1e6).toFixed(2)} s${all ? '' : ' from the first request on'}; shares of busy time`)
  table('self time', [...selfUs], busyUs, count)
  table('inclusive time, lib/ and index.ts', [...inclusiveUs], busyUs, count)
}

main()

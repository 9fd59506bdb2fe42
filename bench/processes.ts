/**
 * The server processes: each started with `fork`, ready once it prints its port, and all of them
 * stopped when the runner ends, whether it finishes, fails or is interrupted. A server also exits
 * by itself if the runner dies without a word (its IPC channel closes).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { ServerSpec } from './config'

export interface RunningServer {
  spec: ServerSpec
  url: string
  stop: () => Promise<void>
}

const SERVER_ENTRY = join(__dirname, 'server.ts')
const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 5_000
const running = new Set<ChildProcess>()

/** Starts a server; `nodeArgs` are extra Node.js flags such as `--expose-gc` or `--cpu-prof`. */
export async function startServer (spec: ServerSpec, nodeArgs: readonly string[] = []): Promise<RunningServer> {
  const { url, stop } = await startProcess(SERVER_ENTRY, spec, spec.variant, nodeArgs)
  return { spec, url, stop }
}

/** Starts the server of another entry file (it follows server.ts's protocol), stopped with the others. */
export async function startProcess (entry: string, spec: object, name: string, nodeArgs: readonly string[] = []): Promise<{ url: string, stop: () => Promise<void> }> {
  const child = fork(entry, [], {
    execArgv: ['--import', 'tsx', ...nodeArgs],
    env: { ...process.env, BENCH_SERVER: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc']
  })
  running.add(child)
  child.once('exit', () => running.delete(child))
  try {
    const port = await readPort(child, name)
    return { url: `http://127.0.0.1:${port}`, stop: async () => await stopChild(child) }
  } catch (err) {
    await stopChild(child)
    throw err
  }
}

async function readPort (child: ChildProcess, variant: string): Promise<number> {
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  return await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(`did not print its port within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS)
    const onExit = (code: number | null): void => fail(`exited (code ${code}) before listening; its stderr is above`)
    function fail (problem: string): void {
      clearTimeout(timer)
      child.off('exit', onExit)
      reject(new Error(`server ${variant} ${problem}`))
    }
    child.once('exit', onExit)
    lines.on('line', (line) => {
      const port = portOf(line)
      if (port === undefined) return
      clearTimeout(timer)
      child.off('exit', onExit)
      resolve(port)
    })
  })
}

function portOf (line: string): number | undefined {
  try {
    const { port } = JSON.parse(line) as { port?: unknown }
    return typeof port === 'number' ? port : undefined
  } catch {
    return undefined
  }
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

export async function stopAllServers (): Promise<void> {
  await Promise.all([...running].map(stopChild))
}

/** Makes sure no server outlives the runner: on exit, on SIGINT/SIGTERM, and on a crash. */
export function stopServersOnExit (): void {
  process.once('exit', () => {
    for (const child of running) child.kill('SIGTERM')
  })
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the servers`)
      stopAllServers().finally(() => process.exit(code))
    })
  }
}

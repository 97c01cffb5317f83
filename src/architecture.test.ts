/**
 * The layout rules of the source, checked on the import graph of src/
 * (type imports included): no import cycle; only store/open.ts chooses a
 * backend; the store thread never loads PostgreSQL; the domain imports
 * nothing outside itself; the client nothing but itself and the event
 * parser; the server's thread loads the heavy modules only on first use.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'

// Compiled to dist/src/: the sources are two folders up, then src/.
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

/** Every module of src/ (tests left out), by path relative to src/. */
function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') &&
      !entry.name.endsWith('.test.ts') &&
      !entry.name.endsWith('-tests.ts')
      ? [relative(SRC, path)]
      : []
  })
}

/** Each module's relative imports, as paths relative to src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sourceFiles()) {
    const text = readFileSync(join(SRC, file), 'utf8')
    const targets = [
      ...text.matchAll(/^(?:import|export)[^'"]*?from '(\.[^']+)'/gms),
    ].map((m) => relative(SRC, resolve(SRC, dirname(file), m[1]!)))
    graph.set(file, targets)
  }
  return graph
}

/**
 * What the modules a start of the server loads import, by value (type
 * imports load nothing): relative imports as paths relative to src/, and
 * packages by name. Dynamic `import()` is left out: it loads on first use.
 */
function loadedAtStart(entry: string): {
  modules: Set<string>
  packages: Set<string>
} {
  const modules = new Set<string>()
  const packages = new Set<string>()
  const stack = [entry]
  while (stack.length > 0) {
    const file = stack.pop()!
    if (modules.has(file)) continue
    modules.add(file)
    const text = readFileSync(join(SRC, file), 'utf8')
    for (const m of text.matchAll(
      /^(?:import|export)(?!\s+type\b)[^'"]*?from '([^']+)'/gms,
    )) {
      const target = m[1]!
      if (target.startsWith('.')) {
        stack.push(relative(SRC, resolve(SRC, dirname(file), target)))
      } else {
        packages.add(target)
      }
    }
  }
  return { modules, packages }
}

/** Every module `from` reaches through imports. */
function reachable(graph: Map<string, string[]>, from: string): Set<string> {
  const seen = new Set<string>()
  const stack = [...(graph.get(from) ?? [])]
  while (stack.length > 0) {
    const next = stack.pop()!
    if (seen.has(next)) continue
    seen.add(next)
    stack.push(...(graph.get(next) ?? []))
  }
  return seen
}

describe('the layout of src/', () => {
  const graph = importGraph()

  it('should read every module and its imports', () => {
    assert.ok(graph.size > 20, `${graph.size} modules`)
    assert.ok(graph.get('server.ts')!.includes('store/open.ts'))
    for (const targets of graph.values()) {
      for (const target of targets) assert.ok(graph.has(target), target)
    }
  })

  it('should have no import cycle', () => {
    const cycles = [...graph.keys()].filter((file) =>
      reachable(graph, file).has(file),
    )
    assert.deepStrictEqual(cycles, [])
  })

  it('should let only store/open.ts choose a backend', () => {
    const backends = ['store/sqlite/', 'store/postgres/', 'store/thread/']
    const outside = [...graph].flatMap(([file, targets]) =>
      targets
        .filter((t) => backends.some((b) => t.startsWith(b)))
        .filter(() => !backends.some((b) => file.startsWith(b)))
        .map((t) => `${file} -> ${t}`),
    )
    assert.deepStrictEqual(
      outside.filter((edge) => !edge.startsWith('store/open.ts ->')),
      [],
    )
  })

  it('should keep PostgreSQL out of the store thread', () => {
    const loaded = reachable(graph, 'store/thread/store-thread.ts')
    assert.deepStrictEqual(
      [...loaded].filter((f) => f.startsWith('store/postgres/')),
      [],
    )
  })

  it('should keep the domain free of everything outside it', () => {
    const domain = [...graph].filter(([file]) => file.startsWith('domain/'))
    assert.ok(domain.length >= 3)
    for (const [file, targets] of domain) {
      assert.deepStrictEqual(
        targets.filter((t) => !t.startsWith('domain/')),
        [],
        file,
      )
    }
  })

  it('should load the robotics modules and the backends only when used', () => {
    // Issue 17: memory at rest. The store thread loads better-sqlite3; the
    // server's thread loads a backend, the MCAP writer, zstd and the
    // Foxglove protocol when it first needs them (store/open.ts,
    // api/mcap.ts, robotics/foxglove-endpoint.ts).
    const { modules, packages } = loadedAtStart('server.ts')
    assert.ok(modules.has('server.ts') && modules.has('api/mcap.ts'))
    assert.ok(packages.has('fastify') && packages.has('ws'))
    assert.deepStrictEqual(
      [...modules].filter(
        (f) =>
          f.startsWith('store/postgres/') ||
          f.startsWith('store/thread/') ||
          f === 'store/sqlite/sqlite-store.ts' ||
          [
            'robotics/mcap.ts',
            'robotics/messages.ts',
            'robotics/foxglove.ts',
          ].includes(f),
      ),
      [],
    )
    assert.deepStrictEqual(
      [...packages].filter(
        (p) =>
          p === 'postgres' ||
          p === 'better-sqlite3' ||
          p.startsWith('@mcap/') ||
          p.startsWith('@foxglove/'),
      ),
      [],
    )
  })

  it('should keep the client to itself and the event parser', () => {
    // The client runs on robots and in browsers: none of the server comes
    // along (web/tsconfig.json checks its browser entry has nothing of Node).
    for (const entry of ['client/node.ts', 'client/browser.ts']) {
      const loaded = reachable(graph, entry)
      assert.ok(loaded.has('client/client.ts'), entry)
      assert.deepStrictEqual(
        [...loaded].filter(
          (f) => !f.startsWith('client/') && f !== 'domain/event.ts',
        ),
        [],
        entry,
      )
    }
  })
})

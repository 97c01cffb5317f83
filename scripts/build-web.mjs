// Builds the dashboard (web/) into dist/web/: web/src/main.ts bundled by
// esbuild with its npm dependencies (no CDN), and the static files beside it.
// Run by `npm run build` after tsc has type-checked web/ (web/tsconfig.json).
import { copyFileSync, mkdirSync } from 'node:fs'
import { build } from 'esbuild'

const out = 'dist/web'
mkdirSync(out, { recursive: true })
await build({
  entryPoints: ['web/src/main.ts'],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: 'es2022',
  outfile: `${out}/app.js`,
  logLevel: 'warning',
})
await build({
  entryPoints: ['web/style.css'],
  bundle: true,
  minify: true,
  outfile: `${out}/style.css`,
  logLevel: 'warning',
})
for (const file of ['index.html', 'favicon.svg']) {
  copyFileSync(`web/${file}`, `${out}/${file}`)
}

// Builds childindex/web/static/ from the npm packages: the compiled CSS and GOV.UK Frontend's JS.
// No crown images or GDS Transport font: those are for GOV.UK itself. Run by `make web`.
import { mkdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as sass from 'sass'

const here = dirname(fileURLToPath(import.meta.url))
const out = join(here, '..', 'static')
const govuk = join(here, 'node_modules', 'govuk-frontend', 'dist', 'govuk')

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })

const css = sass.compile(join(here, 'src', 'app.scss'), {
  loadPaths: [join(here, 'node_modules')],
  style: 'compressed',
  quietDeps: true,
  silenceDeprecations: ['import']
})
writeFileSync(join(out, 'app.css'), css.css)

copyFileSync(join(govuk, 'govuk-frontend.min.js'), join(out, 'govuk-frontend.min.js'))
copyFileSync(join(here, 'src', 'init.js'), join(out, 'init.js'))
copyFileSync(join(here, 'src', 'app.mjs'), join(out, 'app.mjs'))
console.log(`built ${out}`)

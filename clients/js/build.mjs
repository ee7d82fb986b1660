// Builds dist/ from src/index.ts with esbuild: an ES module, a CommonJS module and a browser
// bundle (window.Ressonance), all ES2019; `tsc` (npm run build) writes the type declarations
// first, copied here for CommonJS consumers.
import { copyFileSync } from 'node:fs';
import { build } from 'esbuild';

const common = { entryPoints: ['src/index.ts'], bundle: true, target: 'es2019', logLevel: 'warning' };

await Promise.all([
  build({ ...common, format: 'esm', outfile: 'dist/index.js' }),
  build({ ...common, format: 'cjs', outfile: 'dist/index.cjs' }),
  build({
    ...common,
    format: 'iife',
    globalName: 'Ressonance',
    minify: true,
    outfile: 'dist/ressonance.browser.js',
  }),
]);
copyFileSync('dist/index.d.ts', 'dist/index.d.cts');

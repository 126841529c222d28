// Builds ../plotly-neighborscope.min.js the way plotly.js builds its own dist bundles (esbuild, IIFE, global
// `Plotly`; see plotly.js's esbuild-config.js), from entry.js. Run: npm ci --ignore-scripts && npm run build
const path = require('path');
const version = require('plotly.js/package.json').version;

require('esbuild').build({
    entryPoints: [path.join(__dirname, 'entry.js')],
    outfile: path.join(__dirname, '..', 'plotly-neighborscope.min.js'),
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    target: 'es2016',
    define: { global: 'window', 'define.amd': 'false', 'process.env.NODE_DEBUG': 'false' },
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    // the map subplot's stylesheet (maplibre) is not needed: no map trace is registered
    loader: { '.css': 'empty' },
    legalComments: 'none',
    banner: { js: `/**\n* plotly.js (neighborscope - minified) v${version}: traces scatter, bar, heatmap, pie\n` +
                  '* Copyright 2012-2026, Plotly, Inc.\n* All rights reserved.\n* Licensed under the MIT license\n' +
                  '* Built by dashboard/static/build/build.js from the npm package plotly.js\n*/' },
    logLevel: 'info',
}).catch(() => process.exit(1));

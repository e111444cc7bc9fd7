/// <reference types="node" />
// The portal chat widget: a second, separate build (no Vue, no Element Plus)
// into dist/widget/, served by smeline/agent_console/static.py at /widget/.
// The bundle is one classic script with a content hash (cached for a year);
// chat.js, the name portals embed, is a loader of a few lines written here
// that names the current bundle (revalidated). A classic script, not a
// module: loading it from another origin needs no CORS.
// Run after the console's build, which empties dist/.
import { defineConfig, type Plugin } from 'vite'

function loader(): Plugin {
  return {
    name: 'smeline-widget-loader',
    generateBundle(_options, bundle) {
      const entry = Object.values(bundle).find((file) => file.type === 'chunk' && file.isEntry)
      if (!entry) throw new Error('the widget build has no entry chunk')
      const source =
        '(function(){var s=document.currentScript;if(!s)return;' +
        "var b=(s.getAttribute('data-smeline')||new URL(s.src).origin).replace(/\\/+$/,'');" +
        "var e=document.createElement('script');" +
        `e.src=b+'/widget/${entry.fileName}';e.async=true;e.setAttribute('data-smeline',b);` +
        '(document.head||document.body).appendChild(e)})();\n'
      this.emitFile({ type: 'asset', fileName: 'chat.js', source })
    },
  }
}

export default defineConfig({
  base: '/widget/',
  publicDir: false,
  plugins: [loader()],
  build: {
    outDir: 'dist/widget',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    target: ['chrome87', 'edge88', 'firefox78', 'safari14'],
    rollupOptions: {
      input: 'src/widget/main.ts',
      output: {
        format: 'iife',
        entryFileNames: 'assets/widget-[hash].js',
        inlineDynamicImports: true,
      },
    },
  },
})

/// <reference types="vitest/config" />
// Built by scripts/build-web into dist/, served by smeline/agent_console/static.py
// under /console/. Nothing is fetched from outside the deployment at run time:
// every asset is a file in dist/ (no CDN, no web font, no data: URI inlining, so
// the Content-Security-Policy can stay at 'self').
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

export default defineConfig({
  base: '/console/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    // The office PCs run Chromium-based browsers (360, QQ, Edge) a few versions old.
    target: ['chrome87', 'edge88', 'firefox78', 'safari14'],
    chunkSizeWarningLimit: 700,
    rollupOptions: {
      output: {
        // Vendor code changes less often than ours: separate files keep the
        // browser's long-lived cache of them across console releases.
        manualChunks(id: string): string | undefined {
          if (!id.includes('node_modules')) return undefined
          if (id.includes('/jssip/') || id.includes('/sdp-transform/')) return 'jssip'
          if (id.includes('/element-plus/') || id.includes('/@element-plus/')) return 'element-plus'
          if (id.includes('/echarts/') || id.includes('/zrender/')) return 'echarts'
          return 'vendor'
        },
      },
    },
  },
  server: {
    // `npx vite` for development: the API of ./scripts/run behind the dev server.
    proxy: { '/api': 'http://127.0.0.1:8080' },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
    restoreMocks: true,
    // Element Plus's per-component style modules import .css files, which
    // Node cannot load: let Vite process the package (CSS becomes a no-op).
    server: { deps: { inline: ['element-plus'] } },
  },
})

"""The browser apps (agent console first) and, with the chat issue, their socket.io namespaces.

The apps are Vue 3 + Element Plus, built by Vite from ``web/`` into
``web/dist/`` (``scripts/build-web``) and served by ``static.py``.
"""

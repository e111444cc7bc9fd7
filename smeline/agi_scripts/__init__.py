"""FastAGI: the server Asterisk's dialplan calls with ``AGI(agi://host:4573/route?...)``.

See :mod:`smeline.agi_scripts.fastagi` and ``docs/fastagi.md``.
"""

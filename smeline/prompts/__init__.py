"""Voice prompts: the zh-CN text of every sound a caller hears, and its placeholder audio.

``catalogue`` holds the text (one line per sound name, smeline's own prompts and
the Asterisk stock names played in zh); ``generate`` turns it into 8 kHz mono WAV
files with espeak-ng and sox, never overwriting a recorded voice. See
docs/prompts.md.
"""

"""A test double of Asterisk: AMI over TCP and FastAGI sessions, both shaped
exactly like the recordings of a real Asterisk 22 in ``../shared/asterisk/``.

Where a behaviour is not recorded, the double stays conservative and says so
in a comment next to the code.
"""

from pathlib import Path

#: The recordings of a real Asterisk (read-only, outside the repository).
RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "asterisk"

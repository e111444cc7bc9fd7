"""A test double of Asterisk: AMI over TCP and FastAGI sessions, both shaped
exactly like the recordings of a real Asterisk 22 in ``tests/recordings/``
(copies of ``../shared/asterisk/``).

Where a behaviour is not recorded, the double stays conservative and says so
in a comment next to the code.
"""

from pathlib import Path

#: Recordings of a real Asterisk; see tests/recordings/README.md.
RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"

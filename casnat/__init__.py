"""casnat: CASS-NAT non-autoregressive speech recognition.

>>> import casnat
>>> casnat.__version__
'0.1.0'
"""

from __future__ import annotations

__version__ = "0.1.0"

"""Makes this folder's helper modules (hf_testing, make_fixtures) importable by the tests here,
whatever pytest import mode is configured."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

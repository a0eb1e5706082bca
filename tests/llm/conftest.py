"""Makes this folder's helper module (llm_testing) importable by the tests here."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

"""The server tests reuse tests/llm's helpers (tiny checkpoint, shared bucket shapes)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "llm"))

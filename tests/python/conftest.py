"""Shared set-up for ferry's Python tests: run with
``/usr/bin/python3 -m pytest tests/python -q`` from the repository root."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import fakekernel  # noqa: E402,F401  (puts kernel/python on sys.path)

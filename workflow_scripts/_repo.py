"""Make this checkout's llm4sbr_core importable in a job, whether or not it is installed
(conda environments and cluster nodes run the scripts with a bare interpreter)."""

import sys
from pathlib import Path

_root = str(Path(__file__).resolve().parents[1])
if _root not in sys.path:
    sys.path.insert(0, _root)

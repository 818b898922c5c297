"""Import sqlite-utils without numpy.

sqlite-utils imports numpy when it is installed, only to convert numpy scalars the hub never
stores; numpy is installed (onnxruntime's wheel requires it, and `models score` reads CSV files
with it), and importing it costs the hub about 12 MB (measured: `import hub.daemon` peaks at
41.6 MiB without it, 53.4 MiB with it). Hiding numpy for the one import keeps it out of the daemon
(whose models run without it: `models.ort_capi`); numpy itself is untouched and imports normally
for whoever needs it later.
"""

from __future__ import annotations

import sys

if "sqlite_utils" not in sys.modules and "numpy" not in sys.modules:
    sys.modules["numpy"] = None  # type: ignore[assignment]  # the documented way to block an import
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["numpy"]

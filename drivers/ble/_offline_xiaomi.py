"""Import xiaomi-ble without its Xiaomi-cloud client.

`xiaomi_ble/__init__.py` imports `xiaomi_ble.cloud`, a client for fetching bind keys from Xiaomi's
cloud, which pulls in aiohttp and friends: 12.6 MiB of a hub's memory (measured: bleak,
bthome-ble and xiaomi-ble peak at 51.5 MiB with it, 38.9 MiB without), for a feature an offline
hub never uses (its bind keys come from the configuration). The module is stood in for by an empty
one whose names are placeholder exception classes, before xiaomi-ble is first imported; the
advertisement parser does not use it.
"""

from __future__ import annotations

import sys
import types

_CLOUD = "xiaomi_ble.cloud"


def _placeholder(name: str) -> type[Exception]:
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (Exception,), {"__doc__": "xiaomi-ble's cloud client, not loaded"})


if "xiaomi_ble" not in sys.modules and _CLOUD not in sys.modules:
    _stand_in = types.ModuleType(_CLOUD, "Not loaded: the hub never asks Xiaomi's cloud.")
    _stand_in.__getattr__ = _placeholder  # type: ignore[method-assign]  # PEP 562 module __getattr__
    sys.modules[_CLOUD] = _stand_in

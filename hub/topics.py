"""The hub's own MQTT topics and the native sensor topics: built and parsed here, nowhere else."""

from __future__ import annotations

NATIVE_ROOT = "homeguard/sensors"
HUB_ROOT = "homeguard/hub"

ONLINE = "online"
OFFLINE = "offline"


def hub_status(hub_id: str) -> str:
    """Retained `online`, with `offline` as the last will."""
    return f"{HUB_ROOT}/{hub_id}/status"


def hub_incident(hub_id: str, incident_id: str) -> str:
    """Retained incident JSON (the dispatch API's Incident)."""
    return f"{HUB_ROOT}/{hub_id}/incidents/{incident_id}"


def native_state(device_id: str) -> str:
    return f"{NATIVE_ROOT}/{device_id}/state"


def native_set(device_id: str) -> str:
    return f"{NATIVE_ROOT}/{device_id}/set"


def native_get(device_id: str) -> str:
    return f"{NATIVE_ROOT}/{device_id}/get"


def native_availability(device_id: str) -> str:
    return f"{NATIVE_ROOT}/{device_id}/availability"


NATIVE_FILTER = f"{NATIVE_ROOT}/+/+"


def parse_native(topic: str) -> tuple[str, str] | None:
    """`homeguard/sensors/<id>/<leaf>` → (id, leaf); None for anything else."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "homeguard" or parts[1] != "sensors" or not parts[2]:
        return None
    return parts[2], parts[3]

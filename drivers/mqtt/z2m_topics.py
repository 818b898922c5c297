"""Zigbee2MQTT's topics, under its configurable base topic: built here, for the adapter and the
simulator alike (the hub's own and the native topics are in `hub.topics`)."""

from __future__ import annotations


def z2m_device(base: str, name: str) -> str:
    """A device's state (JSON) under its friendly name."""
    return f"{base}/{name}"


def z2m_set(base: str, name: str) -> str:
    return f"{base}/{name}/set"


def z2m_get(base: str, name: str) -> str:
    return f"{base}/{name}/get"


def z2m_availability(base: str, name: str) -> str:
    """Retained `{"state":"online"}` / `{"state":"offline"}`."""
    return f"{base}/{name}/availability"


def z2m_bridge_state(base: str) -> str:
    """Retained `{"state":"online"}`, with `{"state":"offline"}` as the last will."""
    return f"{base}/bridge/state"


def z2m_bridge_devices(base: str) -> str:
    """Retained JSON list of every device on the network, the coordinator first."""
    return f"{base}/bridge/devices"


def z2m_all(base: str) -> str:
    """Everything under the base topic (the adapter's one subscription)."""
    return f"{base}/#"

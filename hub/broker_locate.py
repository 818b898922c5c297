"""Which MQTT broker to use when `[mqtt] host` names none."""

from __future__ import annotations

import asyncio
import logging

from hub.config import LOCAL_BROKER, MqttSection

_log = logging.getLogger(__name__)


async def locate_broker(mqtt: MqttSection) -> MqttSection:
    """`mqtt` with a host: as named; else this machine's broker if one listens on the port; else
    one announced on the LAN as `_mqtt._tcp`; else this machine again (the hub keeps retrying).

    Never raises for anything the network sends: the hub must start, whatever the LAN says."""
    if mqtt.host is not None:
        return mqtt
    host, port = LOCAL_BROKER, mqtt.port
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
    except (OSError, TimeoutError):
        from hub.zeroconf_mdns import find_mqtt_broker  # only now: zeroconf costs 3 MB

        found = await find_mqtt_broker(mqtt.discovery_timeout_s)  # never raises
        if found is None:
            _log.warning(
                "no MQTT broker on this machine and none announced on the LAN (_mqtt._tcp); "
                "retrying %s:%d",
                host,
                port,
            )
        else:
            host, port = found
            _log.info("using the MQTT broker announced on the LAN at %s:%d", host, port)
    return mqtt.model_copy(update={"host": host, "port": port})

"""aiomqtt's client, without the stray write request that outlives a closed connection.

paho asks for a write (`on_socket_register_write`) from whatever thread queued the packet, so
aiomqtt schedules `loop.add_writer(fd, ...)` with `call_soon_threadsafe`; when the connection
closes before that runs (a publish on the way out at shutdown), the loop is asked to watch a
closed descriptor and logs an ERROR with a traceback ("Bad file descriptor", "the handler is
closed"). Here the request is dropped when, by the time it runs, the socket is no longer the
client's open one.
"""

from __future__ import annotations

from typing import Any

import aiomqtt
import paho.mqtt.client as paho


class Client(aiomqtt.Client):
    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        fileno = sock.fileno()

        def write() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # noqa: BLE001  (as aiomqtt: a broken pipe ends the session)
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def add_writer() -> None:
            current = client.socket()
            if current is not None and current is sock and current.fileno() == fileno != -1:
                self._loop.add_writer(fileno, write)

        self._loop.call_soon_threadsafe(add_writer)

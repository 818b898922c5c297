"""Home Assistant MQTT discovery: learn entities from retained configs, then read their state topics.

Devices that announce themselves to Home Assistant — ESPHome with its MQTT component, Tasmota with
`SetOption19 1`, Zigbee2MQTT, rtl_433, OpenMQTTGateway and many more — publish a retained config
per entity under `<prefix>/<component>/[<node_id>/]<object_id>/config` (prefix `homeassistant` by
default), or one per device under `<prefix>/device/<object_id>/config` with its entities in
`cmps`. This adapter reads those configs (`ha_entity` says which ones and how), subscribes to the
state and availability topics they name, and turns what arrives there into `Reading` and
`Availability` events. An empty retained config deletes the entity, as it does in Home Assistant.

Ids: each entity is a device of the hub, `ha-<slug of its unique_id>` (or of `<node_id>/<object_id>`
when it has none), at most 64 characters; a slug that had to be cut, or that another entity already
holds, ends in a hash of the name. A `[[devices]]` entry with `adapter = "home_assistant"` and
`name = "<unique_id>"` gives that entity its configured id (and so its location). Each new or
changed entity is announced once with `DeviceDiscovered`.

Subscriptions: state topics are learned while connected, so the constructor takes `subscribe`,
called once for each topic the adapter starts to read; when it raises `BadInputError` (a topic the
link cannot subscribe) that entity is refused and the others are read. `filters()` lists the
discovery filters and every learned topic, so a reconnect subscribes them all again. A state or
availability topic that is itself a discovery topic is refused: no config can take over
another's. A topic no entity reads any more is
not unsubscribed (the hub has no unsubscribe path); `owns` stops claiming it, and the next
connection leaves it out. At most `max_entities` entities are learned; configs past that are
refused as TOO_LARGE. A config that is refused leaves the entity it updates as it was.

`claimed(state_topic)`, when given, says whether another adapter decodes that topic natively
(Zigbee2MQTT's own, a configured Tasmota's): such entities are left to it, so a device is not
learned twice. Put this adapter last in the service's list: messages go to the first that owns them.

Values (see `ha_state`): templates are never executed (`ha_template`); whatever cannot be used is
refused per entity and counted; configs the hub has no use for are counted in `ignored`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.mqtt.adapter import Outgoing, Sink
from drivers.mqtt.ha_entity import (
    EntitySpec,
    discovery_id_part,
    entity_spec,
    expand,
    payload_text,
)
from drivers.mqtt.ha_state import Message, state_value
from drivers.mqtt.payload import parse_object
from hub.config import DeviceConfig
from hub.errors import BadInputError, BadInputReason
from hub.events import Availability, Command, DeviceDiscovered, Reading

__all__ = ["DEFAULT_PREFIX", "MAX_ENTITIES", "HomeAssistantAdapter", "device_id_for"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "homeassistant"
MAX_ENTITIES = 2000
_MAX_COMPONENTS = 64  # entities in one device-based config
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
_NOT_SHARED = frozenset({"device", "origin", "components"})

_Key = tuple[str, str]  # (discovery topic, component id inside a device config or "")


@dataclass(slots=True, eq=False)
class _Entity:
    key: _Key
    id: str
    spec: EntitySpec
    online: dict[str, bool] = field(default_factory=dict)


def device_id_for(name: str) -> str:
    """Our id for a learned entity: `ha-` and a slug of its unique_id (at most 64 characters)."""
    slug = _SLUG.sub("-", name).strip("-") or "entity"
    return "ha-" + slug if len(slug) <= 61 else _hashed(slug, name)


def _hashed(slug: str, seed: str) -> str:
    return f"ha-{slug[:52]}-{hashlib.sha1(seed.encode()).hexdigest()[:8]}"  # noqa: S324  (an id, not security)


class HomeAssistantAdapter:
    name = "home_assistant"

    def __init__(
        self,
        devices: list[DeviceConfig],
        sink: Sink,
        max_payload_bytes: int,
        subscribe: Callable[[str], None],
        *,
        prefix: str = DEFAULT_PREFIX,
        claimed: Callable[[str], bool] | None = None,
        max_entities: int = MAX_ENTITIES,
    ) -> None:
        self._prefix = prefix.strip("/") + "/"
        self._sink = sink
        self._max = max_payload_bytes
        self._subscribe = subscribe
        self._claimed = claimed
        self._limit = max_entities
        self._configured = {d.native_name: d.id for d in devices if d.adapter == self.name}
        self._reserved = frozenset(d.id for d in devices)
        self._groups: dict[str, dict[str, _Entity]] = {}  # discovery topic → its entities
        self._ids: dict[str, _Key] = {}
        self._state: dict[str, list[_Entity]] = {}
        self._avail: dict[str, list[_Entity]] = {}
        #: Topics subscribed on the current connection (dropped ones too: nothing unsubscribes).
        self._subscribed: set[str] = set()
        self.ignored = 0  # configs of entities the hub does not read (other components, classes)

    def filters(self) -> tuple[str, ...]:
        """The discovery filters and every learned topic (called on each (re)connect)."""
        learned = sorted(self._state.keys() | self._avail.keys())
        self._subscribed = set(learned)
        return (f"{self._prefix}+/+/config", f"{self._prefix}+/+/+/config", *learned)

    def owns(self, topic: str) -> bool:
        return topic in self._state or topic in self._avail or self._discovery(topic) is not None

    def controls(self, device_id: str) -> bool:
        return False  # sensors only: commands go through the ecosystem's own adapter

    def encode(self, command: Command) -> list[Outgoing]:
        return []

    def entity_ids(self) -> list[str]:
        """The ids of every entity read now."""
        return sorted(self._ids)

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, topic: str, payload: bytes, at: float) -> None:
        # A learned topic is never a discovery topic (`_spec` refuses such configs).
        if topic in self._state or topic in self._avail:
            if len(payload) > self._max:
                raise BadInputError(
                    BadInputReason.TOO_LARGE,
                    f"{len(payload)} bytes is over the {self._max}-byte limit",
                )
            message = Message(payload)
            self._availability(topic, message, at)
            self._states(topic, message, at)
            return
        found = self._discovery(topic)
        if found is None:
            raise BadInputError(
                BadInputReason.UNKNOWN_DEVICE, f"{topic!r:.120} is no discovery or learned topic"
            )
        self._config(topic, *found, payload, at)

    def _discovery(self, topic: str) -> tuple[str, str | None, str] | None:
        if not topic.startswith(self._prefix) or not topic.endswith("/config"):
            return None
        parts = topic[len(self._prefix) : -len("/config")].split("/")
        if len(parts) == 2:
            return parts[0], None, parts[1]
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        return None

    # -- discovery configs ----------------------------------------------------------------------

    def _config(
        self, topic: str, component: str, node: str | None, obj: str, payload: bytes, at: float
    ) -> None:
        if not payload:  # Home Assistant's delete: an empty (retained) config
            self._replace(topic, {}, at)
            return
        if not all(discovery_id_part(p) for p in (component, node or "x", obj)):
            raise BadInputError(BadInputReason.BAD_TOPIC, f"bad discovery topic {topic!r:.120}")
        # Strings as sent: a topic with a lone surrogate is refused (BAD_TOPIC, `topic_check`) as
        # one no device can publish on; `entity_spec` makes the names UTF-8 (U+FFFD).
        config = expand(parse_object(payload, self._max, keep_surrogates=True))
        fallback = f"{node}/{obj}" if node else obj
        if component != "device":
            spec = self._spec(component, fallback, config)
            if spec is None or self._is_claimed(spec):
                self.ignored += 1
                spec = None
            self._replace(topic, {"": spec} if spec is not None else {}, at)
            return
        self._replace(topic, self._device_config(fallback, config), at)

    def _device_config(self, fallback: str, config: dict[str, Any]) -> dict[str, EntitySpec | None]:
        """Device-based discovery: shared options at the top, one entity per `cmps` entry."""
        components = config.get("components")
        if not isinstance(components, dict):
            raise BadInputError(BadInputReason.WRONG_TYPE, "device config without `cmps` object")
        if len(components) > _MAX_COMPONENTS:
            raise BadInputError(
                BadInputReason.TOO_LARGE, f"{len(components)} components in one device config"
            )
        if not components:
            self.ignored += 1  # a device with no entities: nothing to read
        shared = {k: v for k, v in config.items() if k not in _NOT_SHARED}
        specs: dict[str, EntitySpec | None] = {}
        for sub, raw in components.items():
            try:
                if not isinstance(raw, dict) or not discovery_id_part(str(sub)):
                    raise BadInputError(BadInputReason.WRONG_TYPE, f"component {sub!r:.40}")
                merged = {**shared, "device": config.get("device"), **expand(raw)}
                platform = merged.get("platform")
                spec = self._spec(str(platform), f"{fallback}/{sub}", merged)
            except BadInputError as err:
                self._sink.refuse(f"{fallback}/{sub}"[:120], err)
                continue
            if spec is None or self._is_claimed(spec):
                self.ignored += 1
            else:
                specs[str(sub)] = spec
        return specs

    def _spec(self, component: str, fallback: str, config: dict[str, Any]) -> EntitySpec | None:
        """`entity_spec`, refusing state and availability topics that are discovery topics.

        Such a topic would let one config read, and swallow, another entity's config: a device
        could take over its neighbour.
        """
        spec = entity_spec(component, fallback, config)
        if spec is not None:
            for topic in (spec.state_topic, *(a.topic for a in spec.availability)):
                if self._discovery(topic) is not None:
                    raise BadInputError(
                        BadInputReason.BAD_TOPIC,
                        f"{topic!r:.120} is a discovery topic, not a state or availability topic",
                    )
        return spec

    def _is_claimed(self, spec: EntitySpec) -> bool:
        return self._claimed is not None and self._claimed(spec.state_topic)

    def _replace(self, topic: str, specs: dict[str, EntitySpec | None], at: float) -> None:
        """Make the entities of one discovery topic exactly `specs`, announcing what changed."""
        old = self._groups.pop(topic, {})
        new: dict[str, _Entity] = {}
        for sub, spec in specs.items():
            previous = old.pop(sub, None)
            if spec is None:
                if previous is not None:
                    self._unlink(previous)
                continue
            if previous is not None and previous.spec == spec:
                new[sub] = previous
                continue
            if previous is None and len(self._ids) >= self._limit:
                self._sink.refuse(
                    spec.name[:120],
                    BadInputError(
                        BadInputReason.TOO_LARGE,
                        f"already {self._limit} Home Assistant entities: {spec.name!r:.60} not read",
                    ),
                )
                continue
            try:
                self._subscribe_topics(spec)
            except BadInputError as err:  # a topic the link cannot subscribe: this entity only
                self._sink.refuse(spec.name[:120], err)
                if previous is not None:
                    new[sub] = previous  # a refused config leaves the entity as it was
                continue
            if previous is not None:
                self._unlink(previous)
            entity = _Entity((topic, sub), self._id_for(spec.name, (topic, sub)), spec)
            self._link(entity)
            new[sub] = entity
            log.debug("home assistant entity %s: %s on %s", entity.id, spec.name, spec.state_topic)
            self._sink.emit(
                DeviceDiscovered(
                    entity.id,
                    self.name,
                    spec.name[:200],
                    spec.model,
                    (spec.measurement.value,),
                    at,
                )
            )
        for gone in old.values():
            self._unlink(gone)
        if new:
            self._groups[topic] = new

    def _id_for(self, name: str, key: _Key) -> str:
        configured = self._configured.get(name)
        candidates = [configured] if configured is not None else []
        slug = _SLUG.sub("-", name).strip("-") or "entity"
        candidates += [device_id_for(name), _hashed(slug, name), _hashed(slug, repr(key))]
        for candidate in candidates:
            holder = self._ids.get(candidate)
            reserved = candidate in self._reserved and candidate != configured
            if holder is None and not reserved:
                return candidate
        return _hashed(slug, f"{key!r}{len(self._ids)}")  # only a sha1 collision gets here

    def _tables(self, spec: EntitySpec) -> list[tuple[dict[str, list[_Entity]], str]]:
        """Where an entity is read from: its state topic, its availability topics."""
        pairs = [(self._state, spec.state_topic)]
        pairs += [(self._avail, a.topic) for a in spec.availability]
        return pairs

    def _subscribe_topics(self, spec: EntitySpec) -> None:
        """Subscribe what the entity reads and is not subscribed yet (`subscribe` may refuse)."""
        for _, topic in self._tables(spec):
            if topic not in self._subscribed:
                self._subscribe(topic)
                self._subscribed.add(topic)

    def _link(self, entity: _Entity) -> None:
        self._ids[entity.id] = entity.key
        for table, topic in self._tables(entity.spec):
            readers = table.setdefault(topic, [])
            if entity not in readers:  # two availability entries may name one topic
                readers.append(entity)

    def _unlink(self, entity: _Entity) -> None:
        self._ids.pop(entity.id, None)
        for table, topic in self._tables(entity.spec):
            readers = table.get(topic, [])
            if entity in readers:
                readers.remove(entity)
            if not readers:
                table.pop(topic, None)

    # -- state and availability -----------------------------------------------------------------

    def _states(self, topic: str, message: Message, at: float) -> None:
        for entity in self._state.get(topic, ()):
            try:
                value = state_value(entity.spec, message)
                if value is not None:
                    self._sink.emit(Reading(entity.id, entity.spec.measurement, value, at))
            except BadInputError as err:
                self._sink.refuse(entity.id, err)

    def _availability(self, topic: str, message: Message, at: float) -> None:
        for entity in self._avail.get(topic, ()):
            try:
                for spec in entity.spec.availability:
                    if spec.topic == topic:
                        text = payload_text(message.extract(spec.template))
                        if text not in (spec.online, spec.offline):
                            raise BadInputError(
                                BadInputReason.WRONG_TYPE,
                                f"availability {text!r:.40} is neither {spec.online!r:.20} "
                                f"nor {spec.offline!r:.20}",
                            )
                        entity.online[topic] = text == spec.online
                self._sink.emit(Availability(entity.id, _online(entity, topic), at))
            except BadInputError as err:
                self._sink.refuse(entity.id, err)


def _online(entity: _Entity, topic: str) -> bool:
    """Availability by the entity's mode: the latest message, any topic online, or all of them."""
    mode = entity.spec.availability_mode
    if mode == "any":
        return any(entity.online.values())
    if mode == "all":
        return all(entity.online.get(a.topic, False) for a in entity.spec.availability)
    return entity.online.get(topic, False)

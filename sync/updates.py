"""The updates long poll: dispatch decisions become new incident revisions (published on the bus,
so MQTT republishes them); maintenance tasks are kept in the database (`homeguard-hub maintenance`
lists them) and go to the bus. The cursor is stored only after everything it covers has been
applied, and applying is idempotent, so a crash in between applies the same updates again,
harmlessly."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from hub.bus import Bus
from hub.clock import Clock, rfc3339
from hub.errors import StoreError
from hub.events import IncidentChanged, MaintenanceTask, MaintenanceTaskReceived
from hub.incident import Contractor, Dispatch, DispatchStatus
from hub.store import DbWorker, outbox
from hub.store import incidents as incident_repo
from hub.store import maintenance as maintenance_repo
from sync.client import CloudError, DispatchClient
from sync.link import Link, Sleep, retry_backoff

_log = logging.getLogger(__name__)

#: The contract's longest wait.
MAX_WAIT_S = 30


class _Wire(BaseModel):
    # The cloud may add fields; the hub must not break on them.
    model_config = ConfigDict(extra="ignore", frozen=True)


def _storable(value: datetime) -> datetime:
    """The hub keeps a time as POSIX seconds and writes it back in RFC 3339 UTC: it must survive
    that trip, so fall in the years 1 to 9999 in UTC (after the float's rounding, too)."""
    try:
        rfc3339(value.timestamp())
    except (ValueError, OverflowError, OSError) as err:
        raise ValueError("the time must fall in the years 1 to 9999 in UTC") from err
    return value


#: A time on the wire (RFC 3339, so with a zone) that the hub can keep.
_Time = Annotated[AwareDatetime, AfterValidator(_storable)]


class _Contractor(_Wire):
    id: str
    name: str
    phone: str | None = None
    eta: _Time | None = None


class _DispatchUpdate(_Wire):
    type: Literal["dispatch"]
    cursor: str | None = None
    incident_id: str
    status: DispatchStatus
    contractor: _Contractor | None = None
    note: str | None = None
    at: _Time


class _Task(_Wire):
    id: str
    title: str
    system: str
    due: date
    priority: str
    every_days: int | None = None
    every_runtime_h: float | None = None
    estimated_cost: float | None = None
    notes: str | None = None


class _MaintenanceUpdate(_Wire):
    type: Literal["maintenance"]
    cursor: str | None = None
    task: _Task
    at: _Time


_Update: TypeAdapter[_DispatchUpdate | _MaintenanceUpdate] = TypeAdapter(
    Annotated[_DispatchUpdate | _MaintenanceUpdate, Field(discriminator="type")]
)


def parse_dispatch(u: _DispatchUpdate) -> Dispatch:
    c = u.contractor
    eta = None if c is None or c.eta is None else c.eta.timestamp()
    return Dispatch(
        status=u.status,
        at=u.at.timestamp(),
        contractor=None if c is None else Contractor(c.id, c.name, c.phone, eta),
        eta=eta,
        note=u.note,
    )


def _maintenance_task(u: _MaintenanceUpdate) -> MaintenanceTask:
    t = u.task
    return MaintenanceTask(
        id=t.id,
        title=t.title,
        system=t.system,
        due=t.due.isoformat(),
        priority=t.priority,
        every_days=t.every_days,
        every_runtime_h=t.every_runtime_h,
        estimated_cost=t.estimated_cost,
        notes=t.notes,
    )


class UpdatesPoller:
    def __init__(
        self,
        *,
        db: DbWorker,
        client: DispatchClient,
        link: Link,
        bus: Bus,
        clock: Clock,
        sleep: Sleep,
        wait_s: int = MAX_WAIT_S,
    ) -> None:
        self._db = db
        self._client = client
        self._link = link
        self._bus = bus
        self._clock = clock
        self._sleep = sleep
        self._wait_s = min(wait_s, MAX_WAIT_S)
        self.applied = 0
        self.skipped = 0
        self.cursor: str | None = None

    async def run(self) -> None:
        backoff = retry_backoff()
        self.cursor = await self._db.run(outbox.get_state, outbox.STATE_CURSOR)
        while True:
            try:
                updates, nxt = await self._client.updates(self.cursor, self._wait_s)
            except CloudError as err:
                delay = self._link.failed(err, backoff)
                if delay > 0:  # 0: retry at once (the clock skew was just learnt)
                    await self._sleep(delay)
                continue
            self._link.ok()
            try:
                for raw in updates:
                    await self._apply(raw)
                if nxt != self.cursor:
                    await self._db.run(outbox.set_state, {outbox.STATE_CURSOR: nxt})
                    self.cursor = nxt
            except StoreError as err:
                # The cursor did not move: the same updates come again and apply idempotently.
                delay = backoff.next_delay()
                _log.warning("cannot apply cloud updates (%s); retrying in %.1f s", err, delay)
                await self._sleep(delay)
                continue
            backoff.reset()

    async def _apply(self, raw: Any) -> None:
        """Apply one update. One the hub cannot understand or keep is skipped (and logged), so the
        cursor moves past it; a `StoreError` is not about the update: it goes up, and holds the
        cursor back."""
        try:
            update = _Update.validate_python(raw)
        except ValidationError as err:
            self._skip(err.error_count(), err.errors()[0]["msg"])
            return
        try:
            event = await self._keep(update)
        except (ValueError, OverflowError) as err:
            # What validation let through but the hub cannot convert or store (text that is not
            # Unicode, say): the write was rolled back, and a retry would fail the same way.
            self._skip(1, f"{type(err).__name__}: {err}")
            return
        self.applied += 1
        if event is not None:
            self._bus.publish(event)

    async def _keep(
        self, update: _DispatchUpdate | _MaintenanceUpdate
    ) -> IncidentChanged | MaintenanceTaskReceived | None:
        """Store what the update says; the event for the bus (None: nothing changed)."""
        if isinstance(update, _MaintenanceUpdate):
            task, sent_at = _maintenance_task(update), update.at.timestamp()
            if await self._db.run(maintenance_repo.keep, task, sent_at):
                _log.info(
                    "maintenance task %s from the cloud: %s, due %s", task.id, task.title, task.due
                )
            return MaintenanceTaskReceived(task, sent_at)
        changed = await self._db.run(
            incident_repo.record_dispatch,
            update.incident_id,
            parse_dispatch(update),
            self._clock.now(),
        )
        if changed is None:
            return None
        _log.info(
            "dispatch update for incident %s: %s (revision %d)",
            changed.id,
            update.status.value,
            changed.revision,
        )
        return IncidentChanged(changed, changed.updated_at)

    def _skip(self, problems: int, first: str) -> None:
        self.skipped += 1
        _log.warning(
            "ignoring an update the hub does not understand (%d problems): %s", problems, first
        )

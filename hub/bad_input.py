"""Counting and logging refused input: every refusal is counted, each cause is logged once."""

from __future__ import annotations

import logging
from collections import Counter

from hub.errors import BadInputError, BadInputReason

_log = logging.getLogger(__name__)

#: How many distinct causes are remembered as "already logged" (a flood of new ones stays bounded).
_MAX_CAUSES = 1024


class BadInputLog:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, BadInputReason]] = Counter()
        self._logged: set[tuple[str, BadInputReason, str]] = set()
        self._full = False

    def report(self, source: str, subject: str, err: BadInputError) -> None:
        """Count a refusal; the first one of each (source, reason, subject) is a WARNING."""
        self.counts[(source, err.reason)] += 1
        cause = (source, err.reason, subject)
        if cause in self._logged:
            _log.debug("bad input again from %s %s: %s", source, subject, err)
            return
        if len(self._logged) >= _MAX_CAUSES:  # a flood of distinct causes: counted, not logged
            if not self._full:
                self._full = True
                _log.warning(
                    "refused input from %d distinct causes: further new ones are counted and "
                    "logged at DEBUG only (see `status`, bad_input)",
                    _MAX_CAUSES,
                )
            _log.debug("bad input from %s %s: %s", source, subject, err)
            return
        self._logged.add(cause)
        _log.warning(
            "refused input from %s %s: %s (counted; repeats of this are not logged)",
            source,
            subject,
            err,
        )

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """`{"<source>/<reason>": count}` for status and metrics."""
        return {
            f"{source}/{reason.value}": n for (source, reason), n in sorted(self.counts.items())
        }

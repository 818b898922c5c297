"""What the CLI's commands share: exit codes and the hub's database, opened only if it exists."""

from __future__ import annotations

import sys
from typing import Any

from hub.config import Config
from hub.store import open_database
from hub.store.db import DB_NAME

EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
EXIT_NO_PERMISSION = 4


def existing_database(config: Config) -> Any:
    """The hub's database; exits with a clear message when the hub has not created one yet, or
    when this user may not read it."""
    try:
        return _existing_database(config)
    except PermissionError as err:
        print(
            f"no permission to read the hub's database in {config.hub.data_dir} ({err.strerror}): "
            "run as root, or as a member of the hub's group",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_NO_PERMISSION) from None


def _existing_database(config: Config) -> Any:
    if not (config.hub.data_dir / DB_NAME).exists():
        print(
            f"no hub database in {config.hub.data_dir} yet (has the hub run with this "
            "configuration?)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_NOT_FOUND)
    return open_database(config.hub.data_dir)

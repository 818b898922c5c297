"""Model files and their cards: find, verify (sha256) and load into one onnxruntime session each.

A model is `<name>.onnx` with `<name>.card.json` beside it. The card's `sha256` is checked against
the bytes read, and the session is built from those same bytes, so what was checked is what runs.
A mismatch raises `ChecksumMismatch`: the caller refuses the model and the hub runs on without it.
Sessions are onnxruntime's, through its C API (`models.ort_capi`: no numpy in the daemon), with one
intra-op and one inter-op thread (the default pool fights the event loop and the broker on a
two-core hub; see PLATFORM.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.ort_capi import OrtError, Session, Tensor

_log = logging.getLogger(__name__)

#: Where the shipped models live (inside the package, so they ship in the wheel).
MODELS_DIR = Path(__file__).resolve().parent


class ModelError(Exception):
    """A model cannot be used (the root of this package's errors)."""


class ModelNotFound(ModelError):
    pass


class BadCard(ModelError):
    pass


class ChecksumMismatch(ModelError):
    """The model file's sha256 differs from its card's: the file is refused."""

    def __init__(self, name: str, expected: str, actual: str) -> None:
        super().__init__(f"model {name}: sha256 {actual} does not match its card ({expected})")
        self.name = name
        self.expected = expected
        self.actual = actual


def available(directory: Path = MODELS_DIR) -> list[str]:
    """Names of the models in `directory` (those with a card), sorted."""
    return sorted(p.name.removesuffix(".card.json") for p in directory.glob("*.card.json"))


def read_card(name: str, directory: Path = MODELS_DIR) -> dict[str, Any]:
    path = directory / f"{name}.card.json"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelNotFound(f"no model {name!r} in {directory}") from err
    except (OSError, ValueError) as err:
        raise BadCard(f"model {name}: unreadable card {path}: {err}") from err
    if not isinstance(card, dict) or not {"sha256", "file", "version"} <= card.keys():
        raise BadCard(f"model {name}: card {path} lacks sha256, file or version")
    return card


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One verified model: its card and its onnxruntime session."""

    name: str
    card: dict[str, Any]
    session: Session

    @property
    def version(self) -> str:
        return str(self.card["version"])

    def run(self, feeds: Mapping[str, Tensor]) -> Tensor:
        """The model's (first) output for `feeds`, one tensor per graph input, by name."""
        return self.session.run(feeds)[0]


def load(name: str, directory: Path = MODELS_DIR) -> LoadedModel:
    """Read, verify and load model `name`; raises `ModelError` (`ChecksumMismatch`) if unusable."""
    card = read_card(name, directory)
    path = directory / str(card["file"])
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelNotFound(f"model {name}: cannot read {path}: {err}") from err
    actual = sha256_of(data)
    if actual != card["sha256"]:
        raise ChecksumMismatch(name, str(card["sha256"]), actual)
    try:
        session = Session(data)
    except OrtError as err:
        raise ModelError(f"model {name}: onnxruntime cannot load {path}: {err}") from err
    _log.debug("loaded model %s %s (%s)", name, card["version"], actual[:12])
    return LoadedModel(name, card, session)

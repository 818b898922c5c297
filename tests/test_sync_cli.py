"""`homeguard-hub sync status` and `sync flush` (the hub not running: drained from the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.cli import main
from hub.store import open_database, outbox
from sync.server import serve
from tests.sync_support import HUB, new_secret, write_backlog, write_secret


def _config(tmp_path: Path, url: str, secret: bytes) -> Path:
    path = tmp_path / "hub.toml"
    secret_file = write_secret(tmp_path / "cloud.secret", secret)
    path.write_text(
        f'[hub]\nid = "{HUB}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[cloud]\nurl = "{url}"\nsecret_file = "{secret_file}"\n'
    )
    return path


def test_status_then_flush_from_the_cli_then_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = new_secret()
    newest = write_backlog(tmp_path / "data", incidents=5, revisions=3, start=1e9, span_s=60)
    db = open_database(tmp_path / "data")
    bad = json.loads(db.execute("SELECT body FROM outbox LIMIT 1").fetchone()[0])
    bad.update(id="6e0c5ad6-0000-4000-8000-00000000000b", revision=1, severity="apocalyptic")
    db.execute(
        "INSERT INTO outbox (kind, ref_id, revision, priority, body, created_at) "
        "VALUES ('incident', ?, 1, 1, ?, 1e9)",
        [bad["id"], json.dumps(bad)],
    )
    db.conn.close()
    with serve(tmp_path / "cloud.db", {HUB: secret}) as cloud:
        config = _config(tmp_path, cloud.url, secret)
        assert main(["-c", str(config), "sync", "status", "--json"]) == 0
        before = json.loads(capsys.readouterr().out)
        assert before["link"] == "hub not running"
        assert before["outbox"]["incident"]["pending"] == 16
        assert before["oldest_pending_age_s"] > 0
        assert before["dead_letters"] == 0

        assert main(["-c", str(config), "sync", "flush", "--timeout", "30"]) == 0
        out = capsys.readouterr().out
        assert "5 delivered, 1 refused" in out
        assert sorted(cloud.stored_revisions(HUB)) == sorted(newest.items())

    assert main(["-c", str(config), "sync", "status"]) == 0
    text = capsys.readouterr().out
    assert "outbox: 0 pending" in text
    assert "dead letters (refused by the cloud, kept here): 1" in text
    assert "severity" in text  # the server's reason is shown
    assert main(["-c", str(config), "sync", "status", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["outbox_pending"] == 0
    assert after["recent_dead_letters"][0]["id"] == bad["id"]


def test_flush_with_a_wrong_secret_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_backlog(tmp_path / "data", incidents=1, revisions=2, start=1e9, span_s=60)
    with serve(tmp_path / "cloud.db", {HUB: new_secret()}) as cloud:
        config = _config(tmp_path, cloud.url, new_secret())
        assert main(["-c", str(config), "sync", "flush", "--timeout", "30"]) == 1
    assert "Unauthorized" in capsys.readouterr().err
    db = open_database(tmp_path / "data")
    assert outbox.pending_count(db) == 2

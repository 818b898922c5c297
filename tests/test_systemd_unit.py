"""The systemd unit: it parses cleanly, keeps its contract with the daemon, and stays hardened.

Needs `systemd-analyze` (Debian/Ubuntu package `systemd`). Without it these tests fail, never skip:
a skipped hardening check is a hardening check nobody runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "homeguard-hub.service"
UNIT_NAME = UNIT.name
MAX_EXPOSURE = 2.0  # `systemd-analyze security` scale: 0.0 (locked down) .. 10.0 (unsafe)
EXPOSURE_LINE = re.compile(
    r"Overall exposure level for " + re.escape(UNIT_NAME) + r": (\d+(?:\.\d+)?) (\w+)"
)
# Plain, uncoloured, unpaged output whatever the terminal.
QUIET_ENV = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}


@pytest.fixture(scope="module")
def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail(
            "systemd-analyze is not installed: install the `systemd` package "
            "(apt-get install -y systemd); CI installs it. This test never skips."
        )
    return path


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=QUIET_ENV, check=False
    )


def directives(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) for each assignment; keys may repeat, as systemd allows."""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        yield section, key.strip(), value.strip()


def values(section: str, key: str) -> list[str]:
    text = UNIT.read_text(encoding="utf-8")
    return [v for s, k, v in directives(text) if s == section and k == key]


def verify_copy(analyze: str, tmp_path: Path, extra: str = "") -> list[str]:
    """`systemd-analyze verify` on a copy of the unit; returns its complaints (stderr lines).

    The real ExecStart (/opt/homeguard/venv/bin/homeguard-hub) does not exist on a build machine,
    and verify rightly reports "Command ... is not executable". So, for this check only, the copy
    runs /bin/true instead; everything else is the unit byte for byte (test_contract_with_the_daemon
    checks the real ExecStart). `--recursive-errors=no` keeps the verdict to this unit, not to
    whatever mosquitto.service or targets the host happens to ship. systemd-analyze verify may exit
    0 on an unknown key, so any stderr counts as a failure, and so does a non-zero exit.
    """
    text = UNIT.read_text(encoding="utf-8")
    rewritten, count = re.subn(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", text)
    assert count == 1, f"expected exactly one ExecStart= in {UNIT}, found {count}"
    copy = tmp_path / UNIT_NAME
    copy.write_text(rewritten + extra, encoding="utf-8")
    result = run([analyze, "verify", "--man=no", "--recursive-errors=no", str(copy)])
    complaints = [line for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0 and not complaints:
        complaints.append(f"systemd-analyze verify exited {result.returncode}: {result.stdout}")
    return complaints


def test_unit_verifies_without_complaint(analyze: str, tmp_path: Path) -> None:
    complaints = verify_copy(analyze, tmp_path)
    assert complaints == [], "systemd-analyze verify complained:\n" + "\n".join(complaints)


def test_verify_check_catches_an_unknown_key(analyze: str, tmp_path: Path) -> None:
    """The check above is not vacuous: a typo in a key is reported."""
    complaints = verify_copy(analyze, tmp_path, extra="\n[Service]\nProtectSytem=strict\n")
    assert any("ProtectSytem" in line for line in complaints), complaints


def test_exposure_is_at_most_2(analyze: str) -> None:
    threshold = round(MAX_EXPOSURE * 10)  # --threshold counts tenths: 20 means 2.0
    result = run(
        [
            analyze,
            "security",
            "--offline=true",
            f"--threshold={threshold}",
            "--no-pager",
            str(UNIT),
        ]
    )
    match = EXPOSURE_LINE.search(result.stdout)
    assert match, (
        f"no 'Overall exposure level' line (exit {result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{result.stdout}"
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_contract_with_the_daemon() -> None:
    """What hub.daemon and hub.config rely on (sd_notify, config path, state dir)."""
    assert values("Service", "Type") == ["notify"]
    assert values("Service", "ExecStart") == ["/opt/homeguard/venv/bin/homeguard-hub run"]
    assert "HOMEGUARD_CONFIG=/etc/homeguard/hub.toml" in values("Service", "Environment")
    assert values("Service", "StateDirectory") == ["homeguard"]
    assert values("Service", "WatchdogSec") == ["30"]
    assert values("Service", "Restart") == ["always"]
    assert values("Service", "User") == ["homeguard"]


def test_broker_is_wanted_not_required() -> None:
    """The hub must run (rules, valve, local alerts) while Mosquitto is down."""
    wants = " ".join(values("Unit", "Wants")).split()
    assert "mosquitto.service" in wants
    for key in ("Requires", "Requisite", "BindsTo", "PartOf"):
        assert not any("mosquitto" in v for v in values("Unit", key)), key


def test_address_families_let_mdns_work() -> None:
    """hub/zeroconf_mdns.py lists interface addresses with getifaddrs(), which needs netlink."""
    families = " ".join(values("Service", "RestrictAddressFamilies")).split()
    assert set(families) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}, families
    if values("Service", "IPAddressDeny"):  # an allow list must still let mDNS through
        allowed = " ".join(values("Service", "IPAddressAllow")).split()
        assert "multicast" in allowed or {"224.0.0.251", "ff02::fb"} <= set(allowed), allowed


def test_serial_ports_are_the_only_device_nodes() -> None:
    """Modbus, DSMR and JSON-lines devices need their tty; nothing else gets a device node."""
    assert values("Service", "DevicePolicy") == ["closed"]
    allowed = values("Service", "DeviceAllow")
    assert allowed == ["char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw"], allowed
    assert values("Service", "SupplementaryGroups") == ["dialout"]

"""Configuration errors name the file, the line and the key, and say what was expected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub.cli import EXIT_CONFIG, main
from hub.config import Config, load_config
from hub.errors import ConfigError
from tests.broker import make_certificates


def _write(tmp_path: Path, text: str, name: str = "hub.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_no_file_means_built_in_defaults() -> None:
    config = load_config(None)
    assert config == Config(hub=config.hub)  # every other section at its default
    assert config.mqtt.host is None  # this machine's broker, else one announced on the LAN
    assert config.mqtt.broker_host == "127.0.0.1"
    assert config.mqtt.port == 1883
    assert config.cloud is None
    assert config.hub.id.startswith("hub-")


def test_the_fixed_keys_parse(tmp_path: Path) -> None:
    secret = _write(tmp_path, "s" * 40, "cloud.secret")
    secret.chmod(0o600)
    path = _write(
        tmp_path,
        f"""
[hub]
id = "hub-7f3a"
data_dir = "/var/lib/homeguard"

[mqtt]
host = "192.0.2.10"
port = 8883

[cloud]
url = "https://dispatch.example/api"
secret_file = "{secret}"

[[devices]]
id = "kitchen-leak"
adapter = "zigbee2mqtt"
name = "Kitchen Leak"
location = "kitchen"

[[devices]]
id = "main-valve"
adapter = "zigbee2mqtt"
name = "Main Valve"
role = "water_valve"
""",
    )
    config = load_config(path)
    assert config.hub.id == "hub-7f3a"
    assert config.mqtt.port == 8883
    assert config.cloud is not None
    assert config.cloud.url == "https://dispatch.example/api"
    assert [d.id for d in config.devices] == ["kitchen-leak", "main-valve"]
    assert config.devices[1].role == "water_valve"


def test_typo_names_file_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[hub]\nid = "hub-1"\n\n[mqtt]\nhost = "x"\nprot = 1883\n')
    assert _error(path) == f"{path}:6: mqtt.prot: unknown key (a typo?)"


def test_wrong_value_in_second_device_says_what_was_expected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[devices]]\nid = "a"\nadapter = "native"\n\n[[devices]]\nid = "b"\n'
        'adapter = "zigbe2mqtt"\n',
    )
    message = _error(path)
    assert message.startswith(f"{path}:7: devices[1].adapter: ")
    assert "'native', 'zigbee2mqtt', 'shelly', 'tasmota', 'rtl_433'," in message
    assert "'zigbe2mqtt'" in message


def test_out_of_range_port(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "[mqtt]\nport = 70000\n"))
    assert ":2: mqtt.port: Input should be less than or equal to 65535 (got 70000)" in message


def test_bad_device_id_and_duplicates(tmp_path: Path) -> None:
    bad_id = _error(_write(tmp_path, '[[devices]]\nid = "kitchen leak"\nadapter = "native"\n'))
    assert ":2: devices[0].id: String should match pattern" in bad_id
    twice = _error(
        _write(
            tmp_path,
            '[[devices]]\nid = "a"\nadapter = "native"\n[[devices]]\nid = "a"\nadapter = "native"\n',
        )
    )
    assert ":5: devices[1].id: device id 'a' is used twice" in twice


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, '[mqtt]\nhost = "x\n'))
    assert str(tmp_path / "hub.toml") in message
    assert "not valid TOML" in message
    assert "line 2" in message


def test_cloud_url_must_be_https_unless_loopback(tmp_path: Path) -> None:
    secret = _write(tmp_path, "s" * 40, "s.secret")
    secret.chmod(0o600)
    plain = _error(
        _write(tmp_path, f'[cloud]\nurl = "http://dispatch.example"\nsecret_file = "{secret}"\n')
    )
    assert ":2: cloud.url: expected an https:// URL" in plain
    loopback = _write(
        tmp_path,
        f'[cloud]\nurl = "http://127.0.0.1:8080/api/"\nsecret_file = "{secret}"\n',
        "l.toml",
    )
    cloud = load_config(loopback).cloud
    assert cloud is not None
    assert cloud.url == "http://127.0.0.1:8080/api"


def test_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = _write(tmp_path, "hunter2hunter2", "mqtt.password")
    secret.chmod(0o644)
    message = _error(_write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n'))
    assert f":2: mqtt.password_file: {secret} is readable by everyone" in message
    assert "hunter2" not in message
    secret.chmod(0o640)
    config = load_config(tmp_path / "hub.toml")
    assert config.mqtt.password() == "hunter2hunter2"


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, '[hub]\nid = "hub-ok1"\n', "good.toml")
    assert main(["-c", str(good), "check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {good}")
    bad = _write(tmp_path, "[hub]\nidd = 1\n", "bad.toml")
    assert main(["-c", str(bad), "check-config"]) == EXIT_CONFIG
    assert f"{bad}:2: hub.idd: unknown key" in capsys.readouterr().err


def test_homeguard_config_env_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '[hub]\nid = "hub-env"\n')
    monkeypatch.setenv("HOMEGUARD_CONFIG", str(path))
    assert main(["check-config"]) == 0
    assert "hub hub-env" in capsys.readouterr().out
    monkeypatch.setenv("HOMEGUARD_CONFIG", str(tmp_path / "missing.toml"))
    assert main(["check-config"]) == EXIT_CONFIG
    assert "missing.toml: cannot read" in capsys.readouterr().err
    assert os.environ["HOMEGUARD_CONFIG"].endswith("missing.toml")


def test_shelly_and_tasmota_names_are_topics_with_an_optional_channel(tmp_path: Path) -> None:
    ok = _write(
        tmp_path,
        '[[devices]]\nid = "v"\nadapter = "shelly"\nname = "shellyplus1pm-a1#1"\n'
        'location = "laundry"\n'
        '[[devices]]\nid = "p"\nadapter = "tasmota"\nname = "tasmota_A1B2C3"\nrole = "power_cut"\n'
        'location = "laundry"\n',
        "ok.toml",
    )
    assert [d.native_name for d in load_config(ok).devices] == [
        "shellyplus1pm-a1#1",
        "tasmota_A1B2C3",
    ]
    bad = _error(_write(tmp_path, '[[devices]]\nid = "a"\nadapter = "tasmota"\nname = "plug#0"\n'))
    assert bad.startswith(f"{tmp_path / 'hub.toml'}:4: devices[0].name: a tasmota name is")
    assert bad.endswith("(got 'plug#0')")


def test_rtl_433_devices_take_model_and_device_id(tmp_path: Path) -> None:
    ok = _write(
        tmp_path,
        '[[devices]]\nid = "dw"\nadapter = "rtl_433"\nmodel = "Govee-Water"\ndevice_id = 6845\n',
        "ok.toml",
    )
    assert load_config(ok).devices[0].native_name == "Govee-Water:6845"
    missing = _error(_write(tmp_path, '[[devices]]\nid = "dw"\nadapter = "rtl_433"\nmodel = "X"\n'))
    assert missing.endswith(":1: devices[0]: an rtl_433 device needs `model` and `device_id`")
    misplaced = _error(
        _write(
            tmp_path, '[[devices]]\nid = "z"\nadapter = "zigbee2mqtt"\ndevice_id = 5\n', "m.toml"
        )
    )
    assert misplaced.endswith(
        ":4: devices[0].device_id: `device_id` is for rtl_433 devices only (got 5)"
    )


def test_serial_and_ble_devices_name_their_keys(tmp_path: Path) -> None:
    ok = _write(
        tmp_path,
        '[[devices]]\nid = "meter"\nadapter = "modbus"\nport = "/dev/ttyUSB0"\nmodel = "SDM630"\n'
        'unit = 2\n[[devices]]\nid = "flood"\nadapter = "xiaomi"\naddress = "54:EF:44:E0:27:BC"\n',
        "ok.toml",
    )
    meter, flood = load_config(ok).devices
    assert (meter.port, meter.model, meter.unit) == ("/dev/ttyUSB0", "SDM630", 2)
    assert flood.address == "54:EF:44:E0:27:BC"
    cases = {
        '[[devices]]\nid = "m"\nadapter = "dsmr"\n': ":1: devices[0]: a dsmr device needs `port` (its serial device)",
        '[[devices]]\nid = "m"\nadapter = "modbus"\nport = "/dev/ttyUSB0"\nmodel = "SDM72"\n': (
            ":5: devices[0].model: a modbus device needs `model`, one of SDM120, SDM220, SDM630 "
            "(got 'SDM72')"
        ),
        '[[devices]]\nid = "b"\nadapter = "bthome"\naddress = "nope"\n': (
            ":4: devices[0].address: a bthome device needs `address`, e.g. A4:C1:38:12:34:56 "
            "(got 'nope')"
        ),
        '[[devices]]\nid = "b"\nadapter = "native"\nport = "/dev/ttyS0"\n': (
            ":4: devices[0].port: `port` is for dsmr and json_lines and modbus devices only "
            "(got '/dev/ttyS0')"
        ),
        '[[devices]]\nid = "m"\nadapter = "dsmr"\nport = "/dev/ttyS0"\nrole = "siren"\n': (
            ":5: devices[0].role: dsmr devices only report: they cannot have a role (got 'siren')"
        ),
    }
    for i, (text, expected) in enumerate(cases.items()):
        message = _error(_write(tmp_path, text, f"bad{i}.toml"))
        assert message.endswith(expected), message


def test_a_config_holding_a_bind_key_must_not_be_world_readable(tmp_path: Path) -> None:
    text = (
        '[[devices]]\nid = "flood"\nadapter = "xiaomi"\naddress = "54:EF:44:E0:27:BC"\n'
        'bind_key = "255e6cabb39b2eddd0de992b9fee2bf2"\n'
    )
    path = _write(tmp_path, text, "secret.toml")
    path.chmod(0o644)
    message = _error(path)
    assert message == (
        f"{path}:5: devices[0].bind_key: this file holds a bind key and is readable by everyone; "
        f"run: chmod o-rwx {path}"
    )
    assert "255e6cab" not in message
    path.chmod(0o640)
    assert load_config(path).devices[0].bind_key == "255e6cabb39b2eddd0de992b9fee2bf2"
    assert "255e6cab" not in repr(load_config(path))


def test_serial_ports_are_shared_only_by_modbus_meters_that_agree(tmp_path: Path) -> None:
    meter = '[[devices]]\nid = "{id}"\nadapter = "{adapter}"\nport = "/dev/ttyUSB0"\n'
    sdm = 'model = "SDM120"\n'
    two_meters = (
        meter.format(id="a", adapter="modbus") + sdm + "unit = 1\nbaudrate = 9600\n"
        + meter.format(id="b", adapter="modbus") + sdm + "unit = 2\n"  # 9600 is the default
    )  # fmt: skip
    assert len(load_config(_write(tmp_path, two_meters, "ok.toml")).devices) == 2
    cases = {
        meter.format(id="a", adapter="dsmr") + meter.format(id="b", adapter="dsmr"): (
            ":8: devices[1].port: /dev/ttyUSB0 is already a's (dsmr) port"
        ),
        meter.format(id="a", adapter="modbus") + sdm + meter.format(id="b", adapter="modbus") + sdm: (
            ":6: devices[1].unit: unit 1 on /dev/ttyUSB0 is already a"
        ),
        meter.format(id="a", adapter="modbus") + sdm + meter.format(id="b", adapter="modbus") + sdm
        + "unit = 2\nbaudrate = 2400\n": (
            ":9: devices[1].port: meters on /dev/ttyUSB0 must share a's baudrate and parity"
        ),
    }  # fmt: skip
    for i, (text, expected) in enumerate(cases.items()):
        message = _error(_write(tmp_path, text, f"bad{i}.toml"))
        assert message.endswith(expected), message


def test_anomaly_ignore_takes_devices_and_streams_and_names_a_typo(tmp_path: Path) -> None:
    ok = _write(tmp_path, '[anomaly]\nignore = ["pool-pump", "freezer/temperature"]\n')
    assert load_config(ok).anomaly.ignore == ["pool-pump", "freezer/temperature"]
    typo = _write(tmp_path, '[anomaly]\nenabled = true\nignore = ["freezer/temprature"]\n')
    message = _error(typo)
    assert message.startswith(f"{typo}:3: anomaly.ignore: ")
    assert "no measurement 'temprature'" in message
    assert "temperature" in message


def test_the_water_system_calibrates_over_a_day_unless_told(tmp_path: Path) -> None:
    section = '[anomaly.water_system]\nflow = "meter"\n'
    water = load_config(_write(tmp_path, section)).anomaly.water_system
    assert water is not None
    assert water.calibrate_hours == 24.0
    shorter = load_config(_write(tmp_path, section + "calibrate_hours = 2.5\n", "b.toml"))
    assert shorter.anomaly.water_system is not None
    assert shorter.anomaly.water_system.calibrate_hours == 2.5
    bad = _write(tmp_path, section + "calibrate_hours = -1\n", "c.toml")
    assert _error(bad).startswith(f"{bad}:3: anomaly.water_system.calibrate_hours: ")


def test_a_power_cut_must_share_its_location_with_another_device(tmp_path: Path) -> None:
    sensor = (
        '[[devices]]\nid = "leak"\nadapter = "zigbee2mqtt"\nname = "Leak"\nlocation = "kitchen"\n'
    )
    cut = '[[devices]]\nid = "sockets"\nadapter = "shelly"\nname = "shellyplus1-a1"\nrole = "power_cut"\n'
    ok = _write(tmp_path, sensor + cut + 'location = "kitchen"\n', "ok.toml")
    assert [d.location for d in load_config(ok).devices] == ["kitchen", "kitchen"]
    typo = _error(_write(tmp_path, sensor + cut + 'location = "Kitchen "\n', "typo.toml"))
    assert typo.startswith(f"{tmp_path / 'typo.toml'}:11: devices[1].location: no other device")
    assert "(did you mean 'kitchen'?)" in typo
    missing = _error(_write(tmp_path, sensor + cut, "missing.toml"))
    assert missing.startswith(f"{tmp_path / 'missing.toml'}:10: devices[1].role: a power_cut needs")


def test_files_and_the_data_dir_are_checked_when_the_config_is(tmp_path: Path) -> None:
    """What `run` would trip over later (an MQTT link retried forever, a traceback) is named now,
    with file, line and key."""
    (tmp_path / "a-dir").mkdir(mode=0o750)
    db_file = _write(tmp_path, "", "hub.db")
    cases = {
        f'[mqtt]\nhost = "broker.lan"\n[mqtt.tls]\nca_file = "{tmp_path}/ca.pme"\n': (
            f":4: mqtt.tls.ca_file: cannot read {tmp_path}/ca.pme: No such file or directory"
        ),
        f'[mqtt]\npassword_file = "{tmp_path}/a-dir"\n': (
            f":2: mqtt.password_file: {tmp_path}/a-dir is not a file"
        ),
        f'[hub]\ndata_dir = "{db_file}"\n': f":2: hub.data_dir: {db_file} is not a directory",
        f'[hub]\ndata_dir = "{db_file}/data"\n': (
            f":2: hub.data_dir: {db_file}/data cannot be made: {db_file} is a file"
        ),
    }
    for i, (text, expected) in enumerate(cases.items()):
        message = _error(_write(tmp_path, text, f"bad{i}.toml"))
        assert f"bad{i}.toml{expected}" in message, message
    make_certificates(tmp_path)  # a real CA: the file must hold a certificate TLS can use
    ca = tmp_path / "ca.pem"
    ok = _write(tmp_path, f'[mqtt]\nhost = "broker.lan"\n[mqtt.tls]\nca_file = "{ca}"\n', "ok.toml")
    tls = load_config(ok).mqtt.tls
    assert tls is not None
    assert tls.ca_file == ca


def test_a_bind_key_with_a_typo_is_not_echoed_and_json_hides_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = '[[devices]]\nid = "flood"\nadapter = "xiaomi"\naddress = "54:EF:44:E0:27:BC"\n'
    typo = _write(tmp_path, head + 'bind_key = "255e6cabb39b2eddd0de992b9fee2bf "\n', "typo.toml")
    typo.chmod(0o640)
    message = _error(typo)
    assert ":5: devices[0].bind_key:" in message
    assert "255e6cab" not in message  # the journal is read by more people than the file
    good = _write(tmp_path, head + 'bind_key = "255e6cabb39b2eddd0de992b9fee2bf2"\n', "good.toml")
    good.chmod(0o640)
    assert main(["-c", str(good), "check-config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "255e6cab" not in out
    assert '"bind_key": "(set)"' in out


def test_a_ca_file_that_holds_no_certificate_is_named(tmp_path: Path) -> None:
    ca = _write(tmp_path, "not a certificate\n", "ca.pem")
    secret = _write(tmp_path, "s" * 32, "cloud.secret")
    secret.chmod(0o600)
    cases = {
        f'[mqtt]\nhost = "broker.lan"\n[mqtt.tls]\nca_file = "{ca}"\n': ":4: mqtt.tls.ca_file:",
        f'[cloud]\nurl = "https://cloud.example"\nsecret_file = "{secret}"\nca_file = "{ca}"\n': (
            ":4: cloud.ca_file:"
        ),
    }
    for i, (text, where) in enumerate(cases.items()):
        message = _error(_write(tmp_path, text, f"bad{i}.toml"))
        assert f"bad{i}.toml{where} {ca} holds no certificate TLS can use" in message, message


def test_the_cli_creates_nothing_others_can_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = _write(tmp_path, f'[hub]\nid = "hub-umask"\ndata_dir = "{data}"\n')
    old = os.umask(0o022)  # a shell's usual umask
    try:
        assert main(["-c", str(config), "models", "recalibrate"]) == 0
    finally:
        os.umask(old)
    assert oct(data.stat().st_mode & 0o777) == oct(0o750)
    (marker,) = data.iterdir()
    assert oct(marker.stat().st_mode & 0o777) == oct(0o640)

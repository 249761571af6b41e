"""The systemd units in systemd/: the directives the daemon relies on, read without systemd.

When ``systemd-analyze`` is installed, ``scripts/systemd-check.sh`` (verify + offline security
score) must pass too; that is the only test here that may be skipped.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, EX_CONFIG, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "systemd" / "orderflowd.service"
TEMPLATE = ROOT / "systemd" / "orderflowd@.service"
CHECK_SCRIPT = ROOT / "scripts" / "systemd-check.sh"

# systemd's expansion of the specifiers the units use, for a system unit instance "acct1".
SPECIFIERS = {"%S": "/var/lib", "%L": "/var/log", "%i": "acct1", "%%": "%"}

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """Sections → keys → every assignment in file order (systemd allows repeated keys)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):  # continuation: joined with a space, as systemd does
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{path.name}: assignment before any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not an assignment: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    """The value of a single-valued directive (the last assignment wins, as in systemd)."""
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is not set"
    return values[-1]


def effective_list(unit: Unit, section: str, key: str) -> list[str]:
    """A list directive: assignments add words, an empty assignment resets the list."""
    words: list[str] = []
    for value in unit.get(section, {}).get(key, []):
        words = [] if value == "" else words + value.split()
    return words


def environment(unit: Unit) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in unit["Service"].get("Environment", []):
        for item in shlex.split(value):
            name, _, val = item.partition("=")
            env[name] = val
    return env


def expand(value: str) -> str:
    for spec, replacement in SPECIFIERS.items():
        value = value.replace(spec, replacement)
    return value


def seconds(value: str) -> float:
    """systemd time span: a plain number of seconds or a number with s/min suffix."""
    units = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0}
    for suffix in sorted(units, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * units[suffix]
    return float(value)


@pytest.fixture(params=[SERVICE, TEMPLATE], ids=lambda p: p.name)
def unit(request: pytest.FixtureRequest) -> Unit:
    path: Path = request.param
    return parse_unit(path)


def test_notify_type_and_watchdog(unit: Unit) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    # The daemon pings at half of WATCHDOG_USEC; a few seconds at least, or a busy loop trips it.
    assert seconds(one(unit, "Service", "WatchdogSec")) >= 10


def test_restart_policy_stops_on_bad_config(unit: Unit) -> None:
    assert one(unit, "Service", "Restart") == "on-failure"
    assert seconds(one(unit, "Service", "RestartSec")) > 0
    assert str(EX_CONFIG) in effective_list(unit, "Service", "RestartPreventExitStatus")
    # Start limits belong in [Unit]; systemd ignores them (with a warning) in [Service].
    assert int(one(unit, "Unit", "StartLimitBurst")) > 1
    assert seconds(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    assert "StartLimitIntervalSec" not in unit["Service"]


def test_stop_leaves_the_daemon_its_10_seconds(unit: Unit) -> None:
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > 10


def test_runs_the_installed_command_with_an_etc_config(unit: Unit) -> None:
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert Path(argv[0]).name == "orderflowd"
    assert argv[1] == "run"
    assert "--live" not in argv  # live trading is switched on on purpose, by the operator
    config = argv[argv.index("--config") + 1]
    assert config.startswith("/etc/orderflowd/")
    assert config.endswith(".toml")


def test_directories_and_paths_agree(unit: Unit) -> None:
    state = one(unit, "Service", "StateDirectory")
    logs = one(unit, "Service", "LogsDirectory")
    assert not state.startswith("/")
    assert not logs.startswith("/")
    assert one(unit, "Service", "ConfigurationDirectory") == "orderflowd"
    env = environment(unit)
    assert env["ORDERFLOWD_PATHS__STATE_DIR"] == f"%S/{state}"
    assert env["ORDERFLOWD_PATHS__LOG_DIR"] == f"%L/{logs}"
    assert expand(one(unit, "Service", "WorkingDirectory")) == expand(f"%S/{state}")


def test_environment_names_are_settings_keys(unit: Unit) -> None:
    """The daemon refuses unknown ORDERFLOWD_* names; a renamed key would stop the service."""
    for name in environment(unit):
        if not name.startswith(ENV_PREFIX):
            continue
        section, key = name.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED_DELIMITER)
        model = Settings.model_fields[section].annotation
        assert model is not None
        assert key in model.model_fields, name


def test_environment_sets_the_daemon_paths(unit: Unit) -> None:
    env = {k: expand(v) for k, v in environment(unit).items() if k.startswith(ENV_PREFIX)}
    settings = load_settings(ROOT / "config" / "orderflowd.toml", env=env, dotenv=None)
    assert settings.paths.state_dir == Path(expand("%S/" + one(unit, "Service", "StateDirectory")))
    assert settings.paths.log_dir == Path(expand("%L/" + one(unit, "Service", "LogsDirectory")))


def test_hardening(unit: Unit) -> None:
    svc = "Service"
    assert one(unit, svc, "NoNewPrivileges") == "yes"
    assert one(unit, svc, "ProtectSystem") == "strict"
    assert one(unit, svc, "ProtectHome") == "yes"
    assert one(unit, svc, "PrivateTmp") == "yes"
    assert one(unit, svc, "PrivateDevices") == "yes"
    assert one(unit, svc, "DynamicUser") == "yes"
    assert one(unit, svc, "MemoryDenyWriteExecute") == "yes"
    assert one(unit, svc, "UMask") == "0077"
    assert effective_list(unit, svc, "CapabilityBoundingSet") == []
    assert unit[svc]["CapabilityBoundingSet"][-1] == ""  # set, and set to nothing
    assert effective_list(unit, svc, "AmbientCapabilities") == []
    # AF_UNIX carries sd_notify and the journal stream; AF_INET* the gateway socket.
    families = set(effective_list(unit, svc, "RestrictAddressFamilies"))
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert one(unit, svc, "IPAddressDeny") == "any"
    assert one(unit, svc, "IPAddressAllow") == "localhost"
    filters = unit[svc]["SystemCallFilter"]
    assert "@system-service" in filters
    assert any(f.startswith("~") and "@privileged" in f for f in filters)
    # numpy's OpenBLAS calls mbind() (@resources) on import: EPERM, which it ignores, not SIGSYS.
    assert one(unit, svc, "SystemCallErrorNumber") == "EPERM"


def test_descriptors_have_headroom(unit: Unit) -> None:
    """Out of descriptors, the daemon is cut off: no gateway reconnect, no control socket, no
    status.json. systemd's default soft limit is 1024, which ~1000 idle connections to a
    loopback port (any local user can open them) once reached."""
    soft, _, hard = one(unit, "Service", "LimitNOFILE").partition(":")
    assert soft.isdigit(), "LimitNOFILE: a number (infinity would hide a descriptor leak)"
    assert 4096 <= int(soft) <= 1 << 20
    assert not hard or int(hard) >= int(soft)


def test_state_directory_is_private(unit: Unit) -> None:
    """The journal holds the account id and every fill: no other local user may read it."""
    assert one(unit, "Service", "StateDirectoryMode") == "0700"
    assert one(unit, "Service", "UMask") == "0077"


def test_template_and_service_share_the_hardening() -> None:
    """Everything but the per-instance paths and wording is the same in both units."""
    per_instance = {
        "ExecStart",
        "WorkingDirectory",
        "Environment",
        "EnvironmentFile",
        "StateDirectory",
        "LogsDirectory",
    }
    service, template = parse_unit(SERVICE), parse_unit(TEMPLATE)
    assert service.keys() == template.keys()
    for section in service:
        keys = set(service[section]) | set(template[section])
        for key in sorted(keys - per_instance - {"Description"}):
            assert service[section].get(key) == template[section].get(key), f"[{section}] {key}"


def test_single_service_paths() -> None:
    unit = parse_unit(SERVICE)
    assert "--config /etc/orderflowd/orderflowd.toml" in one(unit, "Service", "ExecStart")
    assert one(unit, "Service", "StateDirectory") == "orderflowd"
    assert one(unit, "Service", "LogsDirectory") == "orderflowd"
    assert one(unit, "Service", "WorkingDirectory") == "/var/lib/orderflowd"


def test_template_uses_the_instance_name() -> None:
    unit = parse_unit(TEMPLATE)
    assert "--config /etc/orderflowd/%i.toml" in one(unit, "Service", "ExecStart")
    assert one(unit, "Service", "StateDirectory") == "orderflowd/%i"
    assert one(unit, "Service", "LogsDirectory") == "orderflowd/%i"
    assert one(unit, "Service", "WorkingDirectory") == "%S/orderflowd/%i"
    assert environment(unit)["ORDERFLOWD_PATHS__STATE_DIR"] == "%S/orderflowd/%i"
    # Instances share one gateway: the file must tell the operator to give each its own id.
    assert "client_id" in TEMPLATE.read_text(encoding="utf-8")


def test_check_script_passes() -> None:
    assert CHECK_SCRIPT.stat().st_mode & 0o111, "scripts/systemd-check.sh is not executable"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: verify/security check not run")
    result = subprocess.run(
        ["bash", str(CHECK_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "security orderflowd.service: exposure" in result.stdout
    assert "security orderflowd@.service: exposure" in result.stdout

"""The systemd unit shipped in deploy/: it parses, is hardened, and its command exists."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from renraku.cli import build_parser

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "renraku.service"


def unit_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section → key → values (keys may repeat), the way systemd reads it."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"line {number} is not key=value in a section: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_unit_runs_renraku_serve_unprivileged_and_hardened() -> None:
    unit = unit_entries(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert set(unit) == {"Unit", "Service", "Install"}
    assert service["User"] != ["root"] and service["User"][0]
    assert "RENRAKU_HOME=/var/lib/renraku" in service["Environment"]
    assert service["StateDirectory"] == ["renraku"] and service["StateDirectoryMode"] == ["0700"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == [value], key
    program, *args = shlex.split(service["ExecStart"][0])
    assert Path(program).name == "renraku" and args == ["serve"]
    assert build_parser().parse_args(args).command == "serve"


def _installed_unit(tmp_path: Path) -> Path:
    """The unit as it would be installed from this checkout: ExecStart names this venv's renraku."""
    program = shlex.split(unit_entries(UNIT.read_text(encoding="utf-8"))["Service"]["ExecStart"][0])[0]
    here = Path(sys.executable).parent / "renraku"
    if not here.exists():
        pytest.skip("the renraku command is not installed in this environment (./dev.sh setup)")
    target = tmp_path / "renraku.service"
    target.write_text(UNIT.read_text(encoding="utf-8").replace(program, str(here)), encoding="utf-8")
    return target


def test_the_command_of_the_unit_exists_and_answers(tmp_path: Path) -> None:
    unit = _installed_unit(tmp_path)
    command = shlex.split(unit_entries(unit.read_text(encoding="utf-8"))["Service"]["ExecStart"][0])
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "review desk" in done.stdout


def test_systemd_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = _installed_unit(tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
    broken = tmp_path / "broken.service"  # the check can fail: a misspelt hardening option is reported
    broken.write_text(unit.read_text(encoding="utf-8").replace("ProtectSystem=strict", "ProtectSystem=strikt"))
    done = subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "protect system" in (done.stdout + done.stderr).lower()

"""The command line an administrator uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from renraku.cli import main
from tests.conftest import load_jsonl

INBOX = Path(__file__).resolve().parents[1] / "samples" / "inbox"


def test_process_prints_a_summary_and_writes_the_export(home: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["process", str(INBOX), "--export", str(tmp_path / "export")]) == 0
    out = capsys.readouterr().out
    assert "6 items (6 recorded" in out
    assert "sheets read: 16 (14 forms)" in out
    assert str(home) in out
    assert len(load_jsonl(tmp_path / "export" / "sheets.jsonl")) == 16
    assert (home / "renraku.db").exists()

    assert main(["process", str(INBOX)]) == 0
    assert "6 duplicates" in capsys.readouterr().out
    assert main(["export", "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "sheets.jsonl").read_text() == (tmp_path / "export" / "sheets.jsonl").read_text()


def test_a_missing_path_is_an_error_not_a_trace(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["process", "/nonexistent/inbox"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_configuration_from_a_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from renraku.config import load_settings

    config = tmp_path / "renraku.toml"
    config.write_text(f'home = "{tmp_path / "data"}"\nrender_dpi = 300\nimap_tls = "starttls"\n')
    monkeypatch.setenv("RENRAKU_CONFIG", str(config))
    monkeypatch.delenv("RENRAKU_HOME", raising=False)
    monkeypatch.setenv("RENRAKU_IMAP_TLS", "none")  # the environment wins over the file
    settings = load_settings()
    assert settings.home == tmp_path / "data" and settings.render_dpi == 300 and settings.imap_tls == "none"
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'renraku.db'}"


def test_registry_import_and_export(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = Path(__file__).resolve().parents[1] / "samples" / "registry.csv"
    assert main(["registry", "import", str(sample)]) == 0
    assert "3 facilities added, 5 staff added" in capsys.readouterr().out
    assert main(["registry", "import", str(sample)]) == 0
    assert "0 facilities added, 0 staff added, 0 updated, 5 unchanged" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad_row = "みどり薬局 芳賀店,,,,,名前,,,,not-an-address,\n"
    bad.write_text(sample.read_text(encoding="utf-8") + bad_row, encoding="utf-8")
    assert main(["registry", "import", str(bad)]) == 7
    assert "7 行目" in capsys.readouterr().err
    assert main(["registry", "export", "--out", str(tmp_path / "registry.csv")]) == 0
    assert len((tmp_path / "registry.csv").read_text(encoding="utf-8").splitlines()) == 6
    assert main(["audit", "verify"]) == 0
    assert "2 entries, chain intact" in capsys.readouterr().out


def _commands(parser, prefix: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Every (sub)command of the parser, with its words (`registry import`)."""
    import argparse

    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


def test_every_command_says_what_it_does_and_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    from renraku.cli import build_parser

    commands = list(_commands(build_parser()))
    assert {" ".join(words) for words, _p in commands} >= {"process", "run", "serve", "ui", "users add", "export",
                                                           "registry import", "audit verify", "backup", "restore"}
    for words, _parser in commands:
        with pytest.raises(SystemExit) as exit_:
            main([*words, "--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        description = text.split("\n\n")[1].strip()  # after the usage lines
        assert description and not description.startswith(("positional", "options")), (words, text)
        example = text.split("example:\n", 1)[1].splitlines()[0].strip() if "example:\n" in text else ""
        assert example.startswith(" ".join(("renraku", *words))) or f"renraku {' '.join(words)}" in example, \
            (words, text)


def test_the_exit_codes_in_the_help_and_the_readme_are_those_of_the_exception_family(
        capsys: pytest.CaptureFixture[str]) -> None:
    import re

    import renraku.pipeline.imap  # noqa: F401 (defines ImapError)
    from renraku.errors import RenrakuError

    def family(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *family(sub))]

    # Each class that brings an exit code of its own (TemplateError shares ConfigError's).
    codes = {cls.__name__: cls.exit_code for cls in family(RenrakuError)
             if cls.__module__.startswith("renraku.") and cls.exit_code != cls.__mro__[1].exit_code}
    assert len(set(codes.values())) == len(codes), codes  # one meaning per exit code
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d) \| .*?`(\w+)`", readme, flags=re.M))
    for name, code in codes.items():
        assert re.search(rf"\b{code} [^;]*\({name}\)", help_text), name
        assert table.get(str(code)) == name, (name, table)


def test_users_passwd_sets_a_new_password(home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from sqlalchemy import select

    from renraku.context import open_context
    from renraku.review.auth import check_password
    from renraku.sinks import models as m

    monkeypatch.setattr("sys.stdin", io.StringIO("first-password-1\n"))
    assert main(["users", "add", "sato", "--role", "reviewer", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password-2\n"))
    assert main(["users", "passwd", "sato", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "passwd", "sato", "--password-stdin"]) == 2
    assert "10文字以上" in capsys.readouterr().err
    with open_context() as ctx, ctx.sessions() as s:
        user = s.scalar(select(m.User).where(m.User.name == "sato"))
        assert check_password(user, "second-password-2") and user.session_version == 1

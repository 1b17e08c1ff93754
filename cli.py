"""`renraku`: the one entry point (SPEC §7)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from renraku.errors import RenrakuError


def _print_report(report, verbose: bool) -> None:  # type: ignore[no-untyped-def]
    s = report.stats()
    print(f"batch {report.batch_id}: {s['items']} items ({s['recorded']} recorded, "
          f"{s['duplicates']} duplicates, {s['unsupported']} unsupported, {s['unreadable']} unreadable, "
          f"{s['failed']} failed) in {report.seconds:.1f} s")
    print(f"  sheets read: {report.sheets} ({report.forms} forms), fields: {report.fields} "
          f"({report.flagged} flagged for review), applications: {report.applications}, "
          f"findings: {report.findings}, messages: {report.messages} ({len(report.urgent)} urgent)")
    if report.mails_sent or report.mails_waiting:
        print(f"  confirmation mails sent: {report.mails_sent}, waiting: {report.mails_waiting}")
    for item in report.items:
        if item.status == "duplicate" and not verbose:
            continue  # counted above; -v lists them
        if item.status != "recorded" or item.reason:
            print(f"  {item.status:11} {item.source_ref}: {item.reason}")


def _cmd_process(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.pipeline.progress import Progress
    from renraku.pipeline.run import process_paths
    from renraku.sinks.export import export

    with open_context() as ctx:
        report = process_paths(ctx, [Path(p) for p in args.paths], channel=args.channel, progress=Progress())
        _print_report(report, args.verbose)
        print(f"  data: {ctx.settings.home} (database {ctx.engine.url.render_as_string(hide_password=True)})")
        if args.export:
            with ctx.sessions() as session:
                summary = export(session, Path(args.export))
            print(f"  export: {summary.directory} ({summary.sheets} sheets, {summary.applications} "
                  f"applications, {summary.staff} approved staff)")
        return 1 if report.count("failed") else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.sinks.export import export

    with open_context() as ctx:
        with ctx.sessions() as session:
            summary = export(session, Path(args.out))
        print(f"export: {summary.directory} ({summary.sheets} sheets, {summary.applications} applications, "
              f"{summary.staff} approved staff)")
        return 0


def _cmd_template_derive(args: argparse.Namespace) -> int:
    from renraku.config import DEFAULT_TEMPLATES_DIR
    from renraku.extractors.derive import derive_templates, load_label_map

    labels = Path(args.labels) if args.labels else DEFAULT_TEMPLATES_DIR / "labels.json"
    out = Path(args.out) if args.out else None
    label_map = load_label_map(labels)
    for blank in args.blank:
        for template in derive_templates(Path(blank), label_map):
            text = template.to_json()
            if out is None:
                sys.stdout.write(text)
                continue
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"{template.form_id}.json"
            target.write_text(text, encoding="utf-8")
            print(f"{target}: {template.form_id}, {len(template.fields)} fields "
                  f"(from {Path(blank).name} p.{template.source.page})", file=sys.stderr)
    return 0


def _cmd_registry_import(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.errors import RegistryImportError
    from renraku.sinks.registry import import_csv
    from renraku.validators import load_rule_config

    try:
        with open_context() as ctx, ctx.sessions.begin() as session:
            report = import_csv(session, Path(args.file).read_bytes(), load_rule_config(), actor=args.actor)
    except RegistryImportError as exc:
        print(f"renraku: {exc.reason}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return exc.exit_code
    print(f"registry: {report.facilities_added} facilities added, {report.staff_added} staff added, "
          f"{report.staff_updated} updated, {report.unchanged} unchanged")
    return 0


def _cmd_registry_export(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.sinks.registry import export_csv

    with open_context() as ctx, ctx.sessions() as session:
        n = export_csv(session, Path(args.out))
    print(f"registry: {n} rows written to {args.out}")
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.sinks.audit import verify

    with open_context() as ctx, ctx.sessions() as session:
        report = verify(session)
    if report.ok:
        print(f"audit log: {report.entries} entries, chain intact")
        return 0
    print(f"audit log: entry {report.broken_at} does not verify: {report.reason}", file=sys.stderr)
    return 1


def _cmd_run(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.pipeline.intake import run_once
    from renraku.pipeline.progress import Progress

    if not args.once:
        print("renraku: use `renraku run --once` for one pass, `renraku serve` for the schedule", file=sys.stderr)
        return 2
    with open_context() as ctx:
        report = run_once(ctx, wait=not args.skip_if_running, progress=Progress())
    if report is None:
        print("another intake pass is running; skipped")
        return 0
    _print_report(report, args.verbose)
    return 1 if report.count("failed") else 0


def _cmd_mcs_export(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.sinks import mcs
    from renraku.sinks.queue import SUPERVISOR, Actor

    with open_context() as ctx, ctx.sessions.begin() as session:
        record, data = mcs.export(session, ctx.settings, Actor(args.actor, SUPERVISOR), again=args.again)
        out = Path(args.out)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # names and addresses: private
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        print(f"MCS list {record.id}{' (again)' if args.again else ''}: {record.rows} people written to {out}")
    return 0


def _cmd_mcs_issued(args: argparse.Namespace) -> int:
    from renraku.context import open_context
    from renraku.sinks import mcs
    from renraku.sinks.queue import SUPERVISOR, Actor

    with open_context() as ctx, ctx.sessions.begin() as session:
        record = mcs.mark_issued(session, args.export, Actor(args.actor, SUPERVISOR))
        print(f"MCS list {record.id}: IDs of {record.rows} people recorded as issued")
    return 0


def _serve_ui(host: str, port: int) -> None:
    from waitress import serve as waitress_serve

    from renraku.review import create_app
    from renraku.review.security import WAITRESS_OPTIONS

    print(f"review desk on http://{host}:{port}/", file=sys.stderr)
    waitress_serve(create_app(), host=host, port=port, threads=8, **WAITRESS_OPTIONS)


def _cmd_ui(args: argparse.Namespace) -> int:
    from renraku.config import load_settings

    settings = load_settings()
    _serve_ui(args.host or settings.ui_host, args.port or settings.ui_port)
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    from renraku.config import load_settings

    os.environ.setdefault("DO_NOT_TRACK", "1")
    from renraku.flows import deploy

    settings = load_settings()
    deployment = deploy(settings)
    print(f"deployment renraku-intake/renraku-intake ({deployment}) on work pool {settings.work_pool}; "
          f"on each machine start a worker:\n"
          f"  prefect worker start --pool {settings.work_pool} --type process --limit 1")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import threading

    from renraku.config import load_settings

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from renraku.flows import serve

    settings = load_settings()
    threading.Thread(target=_serve_ui, args=(settings.ui_host, settings.ui_port), daemon=True).start()
    serve(settings)
    return 0


def _cmd_users_add(args: argparse.Namespace) -> int:
    import getpass

    from renraku.context import open_context
    from renraku.review.auth import add_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("パスワード: ")
    try:
        with open_context() as ctx, ctx.sessions.begin() as session:
            add_user(session, args.name, password, args.role, actor="cli")
    except ValueError as exc:
        print(f"renraku: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.name} ({args.role}) added")
    return 0


def _cmd_backup(args: argparse.Namespace) -> int:
    from renraku.config import load_settings
    from renraku.sinks.backup import backup

    summary = backup(load_settings(), Path(args.out))
    print(f"backup: {summary.directory} (database: {summary.database}; {summary.documents} documents, "
          f"{summary.pages} page pictures)")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from renraku.config import load_settings
    from renraku.sinks.backup import restore

    summary = restore(Path(args.backup), load_settings())
    print(f"restore: {summary.home} ({summary.documents} documents, audit log {summary.audit_entries} entries)")
    for digest in summary.missing:
        print(f"  missing from the document store: {digest}", file=sys.stderr)
    if not summary.audit_ok:
        print("  the audit log does not verify: run `renraku audit verify`", file=sys.stderr)
    return 0 if summary.audit_ok and not summary.missing else 1


EXIT_CODES = """exit codes: 0 done; 1 failed (a document, the audit chain); 2 a setting, path or template
(ConfigError); 3 not allowed (PermissionDenied); 4 unreadable input (InputError); 5 storage
(StorageError); 6 decision refused (DecisionRefused); 7 bad registry rows (RegistryImportError);
8 the inbox cannot be reached (ImapError)"""


def _command(sub: argparse._SubParsersAction, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does in a line and shows an example."""
    return sub.add_parser(name, help=summary, description=summary, epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _cmd_users_passwd(args: argparse.Namespace) -> int:
    """A new password for a person; every session they have open ends with it."""
    import getpass

    from sqlalchemy import select

    from renraku.context import open_context
    from renraku.review.auth import set_password
    from renraku.sinks import models as m

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("新しいパスワード: ")
    try:
        with open_context() as ctx, ctx.sessions.begin() as session:
            user = session.scalar(select(m.User).where(m.User.name == args.name))
            if user is None:
                raise ValueError(f"{args.name} というユーザーはいません")
            set_password(session, user, password, actor="cli")
    except ValueError as exc:
        print(f"renraku: {exc}", file=sys.stderr)
        return 2
    print(f"password of {args.name} changed; their open sessions have ended")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="renraku", description="どこでも連絡帳 申請書類の受付: read registration sheets, check the rules, "
        "queue them for review.", epilog=f"example:\n  renraku process samples/inbox --export export\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _command(sub, "process", "run the pipeline on files or folders now (PDF, TIFF, JPEG, PNG, .eml; one batch)",
                 "renraku process ~/scans/2025-05-08.tif --export /tmp/export")
    p.add_argument("paths", nargs="+")
    p.add_argument("--channel", choices=["upload", "scan", "imap"], default="upload",
                   help="how these files arrived (recorded with each document)")
    p.add_argument("--export", metavar="DIR", help="also write the export (SPEC §3) to DIR")
    p.set_defaults(func=_cmd_process)

    p = _command(sub, "run", "pull the inbox and the scan folder (one pass with --once)",
                 "renraku run --once --skip-if-running")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--skip-if-running", action="store_true", help="do nothing if another pass is running")
    p.set_defaults(func=_cmd_run)

    p = _command(sub, "serve", "the scheduled intake (Prefect) and the review desk, until stopped",
                 "RENRAKU_INTERVAL_MINUTES=10 renraku serve")
    p.set_defaults(func=_cmd_serve)

    p = _command(sub, "deploy", "register the scheduled intake on a Prefect work pool, for workers on several "
                 "machines (PostgreSQL)", "PREFECT_API_URL=http://prefect:4200/api renraku deploy")
    p.set_defaults(func=_cmd_deploy)

    p = _command(sub, "ui", "the review desk alone (web UI)", "renraku ui --host 127.0.0.1 --port 8080")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_cmd_ui)

    p = _command(sub, "users", "people who use the review desk", "renraku users add suzuki --role supervisor")
    usub = p.add_subparsers(dest="users_command", required=True)
    u = _command(usub, "add", "add a person (the first supervisor, for one)",
                 "renraku users add tanaka --role reviewer")
    u.add_argument("name")
    u.add_argument("--role", choices=["reviewer", "supervisor", "auditor"], required=True)
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    u.set_defaults(func=_cmd_users_add)
    u = _command(usub, "passwd", "set a new password (ends the person's open sessions)",
                 "renraku users passwd tanaka --password-stdin < new-password.txt")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    u.set_defaults(func=_cmd_users_passwd)

    p = _command(sub, "export", "write sheets.jsonl, applications.jsonl and staff.csv (SPEC §3)",
                 "renraku export --out /srv/export/2025-05-08")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_cmd_export)

    p = _command(sub, "template", "sheet templates", "renraku template derive samples/forms/*.pdf --out /tmp/t")
    tsub = p.add_subparsers(dest="template_command", required=True)
    d = _command(tsub, "derive", "derive templates from blank sheet PDFs",
                 "renraku template derive samples/forms/*.pdf --out samples/templates")
    d.add_argument("blank", nargs="+", metavar="BLANK.pdf")
    d.add_argument("--labels", help="label mapping (default: samples/templates/labels.json)")
    d.add_argument("--out", metavar="DIR", help="write <form_id>.json files here (default: print)")
    d.set_defaults(func=_cmd_template_derive)

    p = _command(sub, "registry", "the registry of facilities and staff", "renraku registry import registry.csv")
    rsub = p.add_subparsers(dest="registry_command", required=True)
    r = _command(rsub, "import", "import a registry CSV (all rows or none; safe to repeat)",
                 "renraku registry import samples/registry.csv")
    r.add_argument("file", metavar="FILE.csv")
    r.add_argument("--actor", default="import", help="who imports (for the audit log)")
    r.set_defaults(func=_cmd_registry_import)
    r = _command(rsub, "export", "write the registry as CSV (the import format)",
                 "renraku registry export --out registry.csv")
    r.add_argument("--out", required=True, metavar="FILE.csv")
    r.set_defaults(func=_cmd_registry_export)

    p = _command(sub, "mcs", "the MCS account list: confirmed addresses, for creating accounts",
                 "renraku mcs export --out mcs-list.csv")
    msub = p.add_subparsers(dest="mcs_command", required=True)
    e = _command(msub, "export", "write the people confirmed since the last list (and mark them)",
                 "renraku mcs export --out mcs-list.csv")
    e.add_argument("--out", required=True, metavar="FILE.csv")
    e.add_argument("--again", type=int, metavar="N", help="write list N once more instead of a new one")
    e.add_argument("--actor", default="cli", help="who exports (for the audit log)")
    e.set_defaults(func=_cmd_mcs_export)
    i = _command(msub, "issued", "record that the IDs of list N were sent to the people", "renraku mcs issued 3")
    i.add_argument("export", type=int, metavar="N")
    i.add_argument("--actor", default="cli", help="who records it (for the audit log)")
    i.set_defaults(func=_cmd_mcs_issued)

    p = _command(sub, "audit", "the audit log", "renraku audit verify")
    asub = p.add_subparsers(dest="audit_command", required=True)
    a = _command(asub, "verify", "check that no audit entry was changed, removed or reordered",
                 "renraku audit verify")
    a.set_defaults(func=_cmd_audit_verify)

    p = _command(sub, "backup", "copy the database (SQLite) and the document store to a new folder",
                 "renraku backup --out /var/backups/renraku/$(date +%F)")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    p.set_defaults(func=_cmd_backup)

    p = _command(sub, "restore", "put a backup into an empty RENRAKU_HOME, then check documents and audit log",
                 "RENRAKU_HOME=/srv/renraku renraku restore /var/backups/renraku/2025-05-08")
    p.add_argument("backup", metavar="DIR", help="a folder written by `renraku backup`")
    p.set_defaults(func=_cmd_restore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = os.environ.get("RENRAKU_LOG_LEVEL") or ["WARNING", "INFO", "DEBUG"][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except RenrakuError as exc:
        print(f"renraku: {exc.reason}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"renraku: no such file or folder: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `renraku process … | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

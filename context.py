"""Everything a command needs, opened once: settings, database, document store, templates."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from renraku.config import Settings, load_settings
from renraku.extractors.fields import reading_config
from renraku.extractors.templates import load_templates
from renraku.pipeline.read import ReadContext
from renraku.sinks.db import make_engine, migrate, session_factory
from renraku.sinks.store import DocumentStore, PictureStore


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: DocumentStore
    reading: ReadContext
    pictures: PictureStore

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def open_context(settings: Settings | None = None) -> Context:
    settings = settings or load_settings()
    _private_dir(settings.home)
    engine = make_engine(settings.database_url)
    migrate(engine, lock_file=settings.home / "migrate.lock")
    reading = ReadContext(load_templates(settings.templates_dir), reading_config(settings.reading_config),
                          workers=max(1, settings.workers))
    return Context(settings, engine, session_factory(engine), DocumentStore(settings.documents_dir), reading,
                   PictureStore(settings.home / "pages"))

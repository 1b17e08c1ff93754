"""Alembic environment: the engine comes from renraku (sinks.db), never from a hard-coded URL."""

from alembic import context
from sqlalchemy import create_engine

from renraku.sinks.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: URL from alembic's own config
    engine = create_engine(config.get_main_option("sqlalchemy.url"))

def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")  # a connection holding the migration lock (PostgreSQL)
if given is not None:
    _run(given)
else:
    with engine.connect() as connection:
        _run(connection)
        connection.commit()

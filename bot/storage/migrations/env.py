"""Alembic environment: runs on the connection `Database.migrate` hands over, or on the URL."""

from alembic import context
from sqlalchemy import create_engine

from bot.capability import load_capabilities
from bot.settings import get_settings
from bot.storage.models import Base

# Every capability keeps its tables beside it (handlers/<capability>/models.py); loading the installed
# capabilities imports them, so the one migration history sees every table in `Base.metadata`.
load_capabilities(get_settings().capabilities)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

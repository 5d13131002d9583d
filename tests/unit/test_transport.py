"""The Celery app's broker URL, as people and Flower see it."""

from __future__ import annotations

from pathlib import Path

from orchestrator.celery_app import make_app
from orchestrator.config import Settings
from orchestrator.transport import TRANSPORT


def test_broker_url_keeps_the_redis_scheme_and_masks_the_password(tmp_path: Path) -> None:
    url = "redis://:s3cret@127.0.0.1:6379/3"
    settings = Settings(home=tmp_path, redis_url=url, database_url=f"sqlite:///{tmp_path}/db")
    app = make_app(url, settings)
    # the app uses the project's transport (it survives a broker restart) ...
    assert app.conf.broker_transport == TRANSPORT
    with app.connection() as conn:
        # ... and its URL still reads as Redis, with the password masked unless asked
        assert conn.as_uri() == "redis://:**@127.0.0.1:6379/3"
        assert conn.as_uri(include_password=True) == url


def test_a_unix_socket_url_is_left_as_it_is(tmp_path: Path) -> None:
    url = f"redis+socket://{tmp_path}/redis.sock"
    settings = Settings(home=tmp_path, redis_url=url, database_url=f"sqlite:///{tmp_path}/db")
    with make_app(url, settings).connection() as conn:
        assert conn.as_uri().startswith("redis+socket://")

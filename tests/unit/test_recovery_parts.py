"""Pure parts of recovery: which slots Running runs hold when a flushed Redis is
rebuilt (labels a waiting parent holds aside), and ``sentinel://`` URLs."""

from __future__ import annotations

import pytest

from orchestrator.config import hide_password, sentinel_url
from orchestrator.errors import ConfigurationError
from workers.slots import held_slots


def test_spliced_children_hold_no_slot_their_parent_holds() -> None:
    running = [
        ("parent", ("gpu", "etl"), None),
        ("child", ("gpu", "db"), "parent"),
        ("grandchild", ("etl", "db", "free"), "child"),
        ("other", ("gpu",), None),
        ("unlimited", ("free",), None),
    ]
    rows = held_slots({"gpu": 2, "etl": 1, "db": 1}, running)
    assert rows == [
        ["parent", "", ["etl", "gpu"]],
        ["child", "parent", ["db"]],
        ["grandchild", "child", []],
        ["other", "", ["gpu"]],
    ]


def test_sentinel_urls_name_every_sentinel_and_the_master() -> None:
    url = (
        "sentinel://:secret@10.0.0.1:26379/2;sentinel://10.0.0.2:26380/2;"
        "sentinel://10.0.0.3/2?master_name=queue"
    )
    parsed = sentinel_url(url)
    assert parsed is not None
    assert parsed.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379))
    assert (parsed.master_name, parsed.db, parsed.password) == ("queue", 2, "secret")
    assert "master_name" not in parsed.celery_url
    assert "secret" not in hide_password(url)
    assert sentinel_url("redis://localhost:6379/0") is None
    assert sentinel_url("sentinel://localhost:26379").master_name == "mymaster"  # type: ignore[union-attr]


@pytest.mark.parametrize("url", ["sentinel:///0", "sentinel://host:26379/zero"])
def test_bad_sentinel_urls_are_one_clear_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"sentinel has no host|must be a number"):
        sentinel_url(url)

"""Structured logs: JSON lines with the bound context and extras, and secrets masked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.logs import MASK, bind_context, configure_logging

log = logging.getLogger("gateway.test_logs")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """configure_logging(json) into a buffer; the root logger is put back afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    configure_logging("DEBUG", json_logs=True, stream=buffer)
    yield buffer
    restore(level, handlers)


def restore(level: int, handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    """This module's records (asyncio and others may log at DEBUG too)."""
    entries = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [entry for entry in entries if entry["logger"] == log.name]


def test_json_lines_carry_the_bound_context_and_extras(json_lines: io.StringIO) -> None:
    with bind_context(run_id="run-1", request_id="req-9"):
        log.info("fetched %d products", 50, extra={"integration_id": "int-3"})
    log.warning("outside")

    inside, outside = records(json_lines)
    assert inside["msg"] == "fetched 50 products"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "gateway.test_logs"
    assert (inside["run_id"], inside["request_id"], inside["integration_id"]) == ("run-1", "req-9", "int-3")
    assert (outside["msg"], outside["run_id"], outside["request_id"]) == ("outside", None, None)


async def test_context_follows_asyncio_tasks(json_lines: io.StringIO) -> None:
    async def job(n: int) -> None:
        with bind_context(run_id=f"run-{n}"):
            await asyncio.sleep(0)
            log.info("step")

    await asyncio.gather(job(1), job(2))

    assert sorted(r["run_id"] for r in records(json_lines)) == ["run-1", "run-2"]


def test_secrets_in_extras_are_masked_at_any_depth(json_lines: io.StringIO) -> None:
    credentials = {"shop": "demo.myshopify.com", "access_token": "shpat_live_123"}
    extra = {
        "password": "hunter2",
        "Authorization": "Bearer abc.def",
        "connection": {"store_url": "https://demo", "credentials": credentials},
        "hooks": [{"topic": "products/update", "webhook_secret": "whsec_1"}],
        "consumer_key": "ck_1",
        "count": 3,
    }

    log.info("connected", extra=extra)

    (entry,) = records(json_lines)
    assert entry["password"] == entry["Authorization"] == entry["consumer_key"] == MASK
    assert entry["connection"] == {"store_url": "https://demo", "credentials": MASK}
    assert entry["hooks"] == [{"topic": "products/update", "webhook_secret": MASK}]
    assert entry["count"] == 3
    assert "hunter2" not in json_lines.getvalue() and "shpat_live_123" not in json_lines.getvalue()
    assert credentials["access_token"] == "shpat_live_123"  # the caller's dict is left alone


def test_exceptions_are_one_json_line(json_lines: io.StringIO) -> None:
    try:
        raise ValueError("bad page")
    except ValueError:
        log.exception("sync failed")

    (entry,) = records(json_lines)  # every line parsed, so the traceback stayed inside its line
    assert entry["level"] == "ERROR"
    assert "ValueError: bad page" in entry["exc"]


def test_console_format_is_readable_and_masked() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    buffer = io.StringIO()
    configure_logging("INFO", json_logs=False, stream=buffer)
    try:
        with bind_context(run_id="run-7"):
            log.info("synced", extra={"api_key": "k-123", "changed": 2})
            log.debug("hidden below INFO")
    finally:
        restore(level, handlers)

    (line,) = buffer.getvalue().splitlines()
    assert "INFO" in line and "gateway.test_logs: synced" in line
    assert "run_id=run-7" in line and "changed=2" in line and f"api_key={MASK}" in line
    assert "k-123" not in line and "request_id" not in line


def test_configure_logging_twice_keeps_one_handler(json_lines: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging("INFO", json_logs=True, stream=second)

    log.info("once")

    assert json_lines.getvalue() == ""
    assert [r["msg"] for r in records(second)] == ["once"]


def test_a_pinned_configuration_outlives_later_calls() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    human = io.StringIO()
    configure_logging("WARNING", json_logs=False, stream=human, pin=True)
    try:
        configure_logging("INFO", json_logs=True, stream=io.StringIO())  # e.g. a worker starting in the demo
        log.info("not shown: the pinned level is WARNING")
        log.warning("shown as a readable line")
        assert "not shown" not in human.getvalue()
        assert f"WARNING {log.name}: shown as a readable line" in human.getvalue()
        assert not human.getvalue().startswith("{")
    finally:
        restore(level, handlers)

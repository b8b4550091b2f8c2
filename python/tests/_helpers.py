"""Small helpers shared by the tests (imported as a plain module: tests/ is on sys.path)."""

import json
import time
from typing import Any, Callable


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Polls `pred` until it is true or `timeout` passes; returns its last truth value."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return bool(pred())
        time.sleep(interval)


def loads(text: str) -> Any:
    """json.loads with the offending text in the failure message."""
    try:
        return json.loads(text)
    except ValueError as e:  # pragma: no cover - only on failure
        raise AssertionError(f"not JSON ({e}): {text!r}") from None

"""What every dynamic provider of this program shares about talking to the Pulumi engine."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pulumi.dynamic import ResourceProvider

PROVIDER_METHODS = ("check", "diff", "create", "update", "delete", "read")


def whole_numbers(value: Any) -> Any:
    """`value` with integral floats turned back into ints, all the way down."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def _with_whole_numbers(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: ResourceProvider, *args: Any) -> Any:
        return method(self, *(whole_numbers(a) for a in args))

    return wrapper


class Provider(ResourceProvider):
    """Base of our dynamic providers. The engine hands numbers over as floats (a port 8082
    arrives as 8082.0, which Nexus and sockets refuse): every method gets them as sent."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in PROVIDER_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _with_whole_numbers(cls.__dict__[name]))

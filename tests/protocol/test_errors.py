"""Error codes on the wire (§1, §2.1, §7) and what each exception carries to the client."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ressonance
from ressonance.protocol.errors import (
    NO_CODE,
    ApiError,
    ConfigError,
    ErrorCode,
    ProtocolError,
    RessonanceError,
    SubscriptionError,
)


@pytest.mark.parametrize(
    ("code", "number"),
    [
        (ErrorCode.SSL_ONLY, 4000),
        (ErrorCode.APP_NOT_FOUND, 4001),
        (ErrorCode.APP_DISABLED, 4003),
        (ErrorCode.OVER_CONNECTION_QUOTA, 4004),
        (ErrorCode.PATH_NOT_FOUND, 4005),
        (ErrorCode.INVALID_VERSION_FORMAT, 4006),
        (ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 4007),
        (ErrorCode.NO_PROTOCOL_VERSION, 4008),
        (ErrorCode.UNAUTHORIZED, 4009),
        (ErrorCode.OVER_CAPACITY, 4100),
        (ErrorCode.GENERIC_RECONNECT, 4200),
        (ErrorCode.PONG_NOT_RECEIVED, 4201),
        (ErrorCode.CLOSED_AFTER_INACTIVITY, 4202),
        (ErrorCode.CLIENT_EVENT_REJECTED, 4301),
        (ErrorCode.WATCHLIST_LIMIT, 4302),
    ],
)
def test_error_code_numbers(code: ErrorCode, number: int) -> None:
    assert code == number


def test_informational_errors_have_a_null_code() -> None:
    assert NO_CODE is None


@pytest.mark.parametrize(
    ("error", "attributes"),
    [
        (
            ProtocolError("Existing subscription to channel x"),
            {"message": "Existing subscription to channel x", "code": None, "channel": None},
        ),
        (
            ProtocolError("nope", ErrorCode.CLIENT_EVENT_REJECTED, "private-x"),
            {"message": "nope", "code": 4301, "channel": "private-x"},
        ),
        (
            SubscriptionError("private-x", "AuthError", "bad signature", 401),
            {
                "channel": "private-x",
                "kind": "AuthError",
                "message": "bad signature",
                "status": 401,
            },
        ),
        (ApiError(413, "too big"), {"status": 413, "message": "too big"}),
        (ConfigError("apps[0].key is missing"), {}),
    ],
)
def test_errors_carry_what_the_client_sees(
    error: RessonanceError, attributes: dict[str, object]
) -> None:
    assert isinstance(error, RessonanceError)
    assert {name: getattr(error, name) for name in attributes} == attributes
    assert str(error) == str(error.args[0])


def _exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in a module of the ressonance package."""
    found = []
    for module_info in pkgutil.walk_packages(ressonance.__path__, "ressonance."):
        if module_info.name == "ressonance.__main__":  # it runs the command when imported
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_exception_is_rooted_in_ressonance_error() -> None:
    classes = _exception_classes()

    assert len(classes) > 10  # the walk found the package's modules
    assert [c.__qualname__ for c in classes if not issubclass(c, RessonanceError)] == []


def test_errors_caught_as_value_errors_still_are() -> None:
    from ressonance.apps.admin import InvalidAppError
    from ressonance.backbone.wire import WireError

    assert issubclass(InvalidAppError, ValueError)
    assert issubclass(WireError, ValueError)

"""The bearer-token check itself (pure): what passes, why the rest is refused, and the
warning for a service exposed without a token. Driven through real services in
tests/integration/test_auth.py and test_fuzz_http.py."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from shared.auth import bearer_headers, check_bearer, warn_if_exposed
from shared.settings import AuthSettings, SettingsError, load

TOKEN = SecretStr("0123456789abcdef-token")


@pytest.mark.parametrize(("header", "refusal"), [
    (None, "missing"), ("", "missing"), ("Bearer", "malformed"), ("Bearer   ", "malformed"),
    ("Basic 0123456789abcdef-token", "malformed"), ("Token 0123456789abcdef-token", "malformed"),
    ("Bearer 0123456789abcdef-toke", "wrong"), ("Bearer 0123456789ABCDEF-token", "wrong"),
    ("Bearer 0123456789abcdef-token0", "wrong"),
    ("Bearer \udcc3\udca9-surrogate-escaped", "wrong"), ("Bearer ünïcode", "wrong"),
    ("Bearer 0123456789abcdef-token", None), ("bearer 0123456789abcdef-token", None),
    ("BEARER  0123456789abcdef-token ", None),
])
def test_check_bearer(header: str | None, refusal: str | None) -> None:
    assert check_bearer(header, TOKEN) == refusal


def test_client_headers() -> None:
    assert bearer_headers(None) == {}
    assert bearer_headers(TOKEN) == {"Authorization": "Bearer 0123456789abcdef-token"}


@pytest.mark.parametrize(("env", "ok"), [
    ({"RADAR_API_TOKEN": ""}, True), ({"RADAR_API_TOKEN": "short"}, False),
    ({"RADAR_INGESTOR_TOKEN": "has a space in it, 16+"}, False),
    ({"RADAR_INGESTOR_TOKEN": "ünïcödé-ünïcödé-ünïcödé"}, False),
    ({"RADAR_INGESTOR_TOKEN": "good-token-0123456789"}, True),
])
def test_token_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                        ok: bool) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ok:
        settings = load(AuthSettings)
        assert "0123456789" not in repr(settings)
    else:
        with pytest.raises(SettingsError, match=r"RADAR_(API|INGESTOR)_TOKEN"):
            load(AuthSettings)


@pytest.mark.parametrize(("host", "token", "warned"), [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
    ("0.0.0.0", None, True), ("10.1.2.3", None, True), ("radar.internal", None, True),
    ("0.0.0.0", TOKEN, False),
])
def test_warning_when_exposed_without_a_token(caplog: pytest.LogCaptureFixture, host: str,
                                              token: SecretStr | None, warned: bool) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.auth"):
        warn_if_exposed("ingestor", host, token, "RADAR_INGESTOR_TOKEN")
    assert bool(caplog.records) == warned

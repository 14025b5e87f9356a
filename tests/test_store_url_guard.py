"""The store-URL guard at connect time (issue 11, finding 12): IPv4 addresses hidden in IPv6 forms, and
host names DNS cannot hold, answer BAD_USER_INPUT naming the problem (not INTERNAL)."""

from __future__ import annotations

import pytest
from gwtest import CONNECT, Api

from gateway.errors import BadInput
from gateway.urls import check_store_url

EMBEDDING = [
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "http://[::127.0.0.1]/",  # IPv4-compatible loopback
    "http://[64:ff9b::127.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://[fe80::1%25eth0]/",  # scoped link-local
]


@pytest.mark.parametrize("url", EMBEDDING)
def test_ipv4_embedding_forms_are_refused(url: str) -> None:
    with pytest.raises(BadInput, match="only public stores can be connected") as caught:
        check_store_url(url, allow_private=False)
    assert caught.value.field == "storeUrl"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"https://{'a' * 64}.example.com", "label longer than 63 characters"),
        (f"https://{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 63}.com", "longer than 253 characters"),
        ("https://shop..example.com", "not a valid host name"),
        ("https://shop.example.com:99999", "invalid port"),
    ],
)
def test_host_names_dns_cannot_hold_are_bad_input(url: str, problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        check_store_url(url, allow_private=True)


def _codes(body: dict[str, object]) -> list[object]:
    errors = body.get("errors") or []
    assert isinstance(errors, list)
    return [e["extensions"]["code"] for e in errors]


@pytest.mark.parametrize("settings_overrides", [{"GATEWAY_ALLOW_PRIVATE_URLS": False}])
async def test_connect_answers_bad_user_input_for_each(api: Api) -> None:
    for url in [*EMBEDDING[:5], f"https://{'a' * 64}.example.com"]:
        body = await api.raw(
            CONNECT, {"input": {"platform": "toy", "name": "x", "storeUrl": url, "credentials": {"token": "t"}}}
        )
        assert _codes(body) == ["BAD_USER_INPUT"], (url, body)
        errors = body["errors"]
        assert isinstance(errors, list)
        assert errors[0]["extensions"]["field"] == "storeUrl"

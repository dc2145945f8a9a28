from __future__ import annotations

import pytest

from replication.syncer.urls import UrlError, parse_redis_url


def test_full_url_with_encoded_password_and_params() -> None:
    u = parse_redis_url(
        "rediss://admin:p%40ss%3Aw%2Frd@db.example.com:16379/2?sni=proxy.example.com"
    )
    assert (u.tls, u.username, u.password, u.host, u.port, u.db, u.sni) == (
        True,
        "admin",
        "p@ss:w/rd",
        "db.example.com",
        16379,
        2,
        "proxy.example.com",
    )
    assert "p@ss" not in repr(u) and "***" in u.redacted()


@pytest.mark.parametrize(
    ("url", "host", "port", "password"),
    [
        ("redis://127.0.0.1", "127.0.0.1", 6379, None),
        ("redis://:secret@10.0.0.1:7000", "10.0.0.1", 7000, "secret"),
        ("redis://[::1]:6380", "::1", 6380, None),
        ("redis://[2001:db8::1]", "2001:db8::1", 6379, None),
        ("REDIS://Host-1.local:1", "Host-1.local", 1, None),
    ],
)
def test_hosts_and_ports(url: str, host: str, port: int, password: str | None) -> None:
    u = parse_redis_url(url)
    assert (u.host, u.port, u.password, u.username) == (host, port, password, None)


def test_ipv6_address_is_bracketed_in_address() -> None:
    assert parse_redis_url("redis://[::1]:6380").address == "[::1]:6380"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://host", "unsupported scheme"),
        ("host:6379", "must start with"),
        ("redis://", "no host"),
        ("redis://host:0", "out of range"),
        ("redis://host:70000", "out of range"),
        ("redis://host:abc", "not a number"),
        ("redis://::1:6379", "brackets"),
        ("redis://[::zz]:1", "IPv6"),
        ("redis://300.1.1.1", "IPv4"),
        ("redis://bad_host!", "host name"),
        ("redis://host?ssl_cert_reqs=none", "unknown URL parameter"),
        ("redis://host?db=1&db=2", "twice"),
        ("redis://host/1?db=2", "both"),
        ("redis://host/x", "database number"),
        ("redis://host?sni=x", "rediss"),
        ("redis://secret@host", "credentials without ':'"),
        ("redis://user:@host", "empty password"),
        ("redis://host #x", "whitespace"),
        ("redis://:a#b@host", "fragments"),
        ("redis://host?cluster=maybe", "yes or no"),
        ("redis://host?connect_timeout=-1", "between"),
    ],
)
def test_errors_are_clear(url: str, message: str) -> None:
    with pytest.raises(UrlError, match=message):
        parse_redis_url(url)


def test_error_never_shows_password() -> None:
    with pytest.raises(UrlError) as info:
        parse_redis_url("redis://:topsecret@host:99999")
    assert "topsecret" not in str(info.value)

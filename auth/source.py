"""The address a request came from, as far as it can be believed.

Without configured proxies it is the peer of the connection, whatever the request's headers say:
X-Forwarded-For is written by the client unless a proxy we run replaces it. With proxies configured
(CHILDINDEX_TRUSTED_PROXIES: addresses or networks), a request whose peer is one of them is taken
to come from the address that proxy saw: X-Forwarded-For is read from the right (the hop nearest
us) past every trusted proxy, and the first address not ours is the source. Anything unreadable
stops the walk at the last address we could believe.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_proxies(value: str | Iterable[str] | None) -> tuple[Network, ...]:
    """Networks from 'a, b/24, ...' (a plain address is a network of one); ValueError names the bad one."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[Network] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"CHILDINDEX_TRUSTED_PROXIES: '{item}' is not an IP address or network"
            ) from None
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def source_address(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str:
    """The request's source: the peer, or (behind trusted proxies) the nearest untrusted hop."""
    current = _address(peer or "")
    if current is None:
        return (peer or UNKNOWN)[:64]
    hops = [h for value in forwarded_for for h in value.split(",")]
    while proxies and _trusted(current, proxies) and hops:
        previous = _address(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)


def request_source(request: Any, proxies: Sequence[Network]) -> str:
    """`source_address` of a Starlette request."""
    client = request.client
    return source_address(
        client.host if client else None, request.headers.getlist("x-forwarded-for"), proxies
    )

"""The target tables shared by the proxy tests and the in-sandbox tests.

``{p}`` is the plain receiver's port, ``{tp}`` the TLS receiver's; names resolve
through the test resolver in ``conftest.py``.
"""

from __future__ import annotations

ANY = ["*", "receiver.test", "*.wild.test"]
"""any public host, plus named receivers (named hosts may use the test's 127.0.0.1/32)"""
NAMED = ["receiver.test", "*.wild.test"]

TEREDO_LOOPBACK = "2001:0:4136:e378:8000:63bf:80ff:fffe"  # client address 127.0.0.1

REFUSED: list[tuple[str, list[str], str]] = [
    # loopback, spelled every way ({p}: the plain receiver's port, {tp}: the TLS one's)
    ("http://127.0.0.1:{p}/", ANY, "address_denied"),
    ("http://localhost:{p}/", ANY, "address_denied"),
    ("http://LOCALHOST.:{p}/", ANY, "address_denied"),
    ("http://127.1:{p}/", ANY, "address_denied"),
    ("http://127.0.1:{p}/", ANY, "address_denied"),
    ("http://2130706433:{p}/", ANY, "address_denied"),
    ("http://0x7f000001:{p}/", ANY, "address_denied"),
    ("http://0x7f.0.0.1:{p}/", ANY, "address_denied"),
    ("http://0177.0.0.1:{p}/", ANY, "address_denied"),
    ("http://017700000001:{p}/", ANY, "address_denied"),
    ("http://0x7f.1:{p}/", ANY, "address_denied"),
    ("http://127.0.0.2:{p}/", ANY, "address_denied"),
    ("http://[::1]:{p}/", ANY, "address_denied"),
    ("http://[0:0:0:0:0:0:0:1]:{p}/", ANY, "address_denied"),
    ("http://[::ffff:127.0.0.1]:{p}/", ANY, "address_denied"),
    ("http://[::ffff:7f00:1]:{p}/", ANY, "address_denied"),
    ("http://[::127.0.0.1]:{p}/", ANY, "address_denied"),
    ("http://[64:ff9b::127.0.0.1]:{p}/", ANY, "address_denied"),
    ("http://[2002:7f00:1::]:{p}/", ANY, "address_denied"),
    (f"http://[{TEREDO_LOOPBACK}]:{{p}}/", ANY, "address_denied"),
    ("http://0.0.0.0:{p}/", ANY, "address_denied"),
    ("http://0:{p}/", ANY, "address_denied"),
    ("http://[::]:{p}/", ANY, "address_denied"),
    ("https://127.0.0.1:{tp}/", ANY, "address_denied"),
    ("https://localhost:{tp}/", ANY, "address_denied"),
    ("https://[::ffff:127.0.0.1]:{tp}/", ANY, "address_denied"),
    ("https://2130706433:{tp}/", ANY, "address_denied"),
    # private, shared, link-local, metadata, multicast, reserved
    ("http://10.0.0.1/", ANY, "address_denied"),
    ("http://172.16.0.1/", ANY, "address_denied"),
    ("http://192.168.1.1/", ANY, "address_denied"),
    ("http://100.64.0.1/", ANY, "address_denied"),
    ("http://169.254.169.254/latest/meta-data/", ANY, "address_denied"),
    ("http://[fd00:ec2::254]/latest/meta-data/", ANY, "address_denied"),
    ("http://0xa9fea9fe/latest/meta-data/", ANY, "address_denied"),
    ("http://0251.0376.0251.0376/latest/meta-data/", ANY, "address_denied"),
    ("http://169.254.43518/latest/meta-data/", ANY, "address_denied"),
    ("https://169.254.169.254/", ANY, "address_denied"),
    ("http://169.254.1.1/", ANY, "address_denied"),
    ("http://224.0.0.1/", ANY, "address_denied"),
    ("http://255.255.255.255/", ANY, "address_denied"),
    ("http://240.0.0.1/", ANY, "address_denied"),
    ("http://198.18.0.1/", ANY, "address_denied"),
    ("http://[fe80::1]/", ANY, "address_denied"),
    ("http://[fc00::1]/", ANY, "address_denied"),
    ("http://[ff02::1]/", ANY, "address_denied"),
    # names that resolve into blocked space
    ("http://private.test:{p}/", ANY, "address_denied"),
    ("https://private.test/", ANY, "address_denied"),
    ("http://cgnat.test/", ANY, "address_denied"),
    ("http://metadata.test/latest/meta-data/", ANY, "address_denied"),
    ("http://mapped.test:{p}/", ANY, "address_denied"),
    ("http://nat64.test/", ANY, "address_denied"),
    ("http://ula.test/", ANY, "address_denied"),
    ("http://rebind.test/", ANY, "address_denied"),
    ("http://wild.test:{p}/", ANY, "address_denied"),  # "*.wild.test" does not name the apex
    ("http://nowhere.test/", ANY, "unresolvable"),
    # hosts not in the manifest
    ("http://other.test:{p}/", NAMED, "host_not_allowed"),
    ("http://127.0.0.1:{p}/", NAMED, "host_not_allowed"),
    ("http://wild.test:{p}/", NAMED, "host_not_allowed"),
    ("http://receiver.test.evil.test:{p}/", NAMED, "host_not_allowed"),
    ("https://other.test:{tp}/", NAMED, "host_not_allowed"),
    # ports outside the allowed set
    ("http://receiver.test:6379/", NAMED, "port_not_allowed"),
    ("http://receiver.test:22/", NAMED, "port_not_allowed"),
    ("https://receiver.test:25/", NAMED, "port_not_allowed"),
    # not a host at all
    ("http://1.2.3.999/", ANY, "bad_host"),
    ("http://08.0.0.1/", ANY, "bad_host"),
]

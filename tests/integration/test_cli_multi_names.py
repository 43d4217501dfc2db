"""Commands over several names on a real engine: every name tried, one error line each, status 1."""

from __future__ import annotations

from tests.conftest import needs_busybox, needs_root
from tests.support.cli import Pallet

pytestmark = [needs_root, needs_busybox]

DAEMON = "Error response from daemon: "


def test_rm_start_pause_over_several_names(pallet: Pallet, busybox_image: str) -> None:
    p = pallet
    for name in ("m1", "m2"):
        p.ok("create", "--network", "none", "--name", name, busybox_image, "true")
    # pause: neither is running, both fail; each reported, status 1
    r = p("pause", "m1", "nosuch", "m2")
    assert r.rc == 1 and r.out == "", r
    lines = r.err.splitlines()
    assert len(lines) == 3 and all(ln.startswith(DAEMON) for ln in lines), r
    assert lines[1] == DAEMON + "No such container: nosuch"
    # start: the ones that started are printed, the failed one named at the end
    r = p("start", "m1", "nosuch", "m2")
    assert r.rc == 125 and r.out == "m1\nm2\n", r
    assert r.err.splitlines() == [DAEMON + "No such container: nosuch",
                                  "Error: failed to start containers: nosuch"], r
    assert p.ok("wait", "m1", "m2") == "0\n0\n"
    # rm: the missing name in between does not stop the others
    r = p("rm", "m1", "nosuch", "m2")
    assert (r.rc, r.out, r.err) == (1, "m1\nm2\n", DAEMON + "No such container: nosuch\n"), r
    assert p.ok("ps", "-a", "-q") == ""
    # one name: its own error, one line, 125
    r = p("rm", "nosuch")
    assert (r.rc, r.err) == (125, "Error: No such container: nosuch\n"), r
    # rm -f: a missing container is reported, and is no failure (as Docker)
    r = p("rm", "-f", "nosuch")
    assert (r.rc, r.out, r.err) == (0, "", DAEMON + "No such container: nosuch\n"), r


def test_volume_and_network_rm_over_several_names(pallet: Pallet) -> None:
    p = pallet
    p.ok("volume", "create", "v1")
    p.ok("volume", "create", "v2")
    r = p("volume", "rm", "v1", "nosuch", "v2")
    assert r.rc == 1 and r.out == "v1\nv2\n" and r.err.startswith(DAEMON) and "nosuch" in r.err, r
    assert p("volume", "rm", "-f", "nosuch").rc == 0
    r = p("network", "rm", "none", "nosuch")
    assert r.rc == 1 and r.out == "", r
    assert len(r.err.splitlines()) == 2 and all(ln.startswith(DAEMON) for ln in r.err.splitlines()), r
    assert p("network", "rm", "-f", "nosuch").rc == 0

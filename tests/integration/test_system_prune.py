"""``pallet system prune``: what a Docker user expects it to remove, and what to keep."""

from __future__ import annotations

from tests.support.cli import Pallet


def test_system_prune_removes_unused_and_keeps_what_is_used(pallet: Pallet, busybox_image: str) -> None:
    p = pallet
    p.ok("run", "--network", "none", "--name", "done", busybox_image, "true")
    p.ok("run", "-d", "--network", "none", "--name", "busy", busybox_image, "sleep", "60")
    p.ok("create", "--network", "none", "--name", "anon", "-v", "/scratch", busybox_image, "true")
    p.ok("rm", "anon")  # its anonymous volume stays behind, unused
    assert len(p.ok("volume", "ls", "-q").split()) == 1
    p.ok("tag", busybox_image, "extra:1")
    try:
        out = p.ok("system", "prune", "-f", "--volumes")
        assert "Deleted Containers:" in out and "Deleted Volumes:" in out
        assert "Total reclaimed space:" in out
        names = p.ok("ps", "-a", "--format", "{{.Names}}").split()
        assert names == ["busy"]  # the stopped one went, the running one stayed
        assert p.ok("volume", "ls", "-q").strip() == ""
        # tagged images are not dangling: kept without -a, and the used one kept with -a too
        assert "extra" in p.ok("images", "--format", "{{.Repository}}")
        p.ok("rmi", "extra:1")
        p.ok("system", "prune", "-f", "-a")
        assert busybox_image.split(":")[0] in p.ok("images", "--format", "{{.Repository}}")
        r = p("system", "prune", input="n\n")  # answered no: nothing happens
        assert r.rc == 0 and "WARNING! This will remove:" in r.out
        assert p.ok("ps", "-a", "--format", "{{.Names}}").split() == ["busy"]
    finally:
        p("rm", "-f", "busy")

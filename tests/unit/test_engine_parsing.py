"""Pure parts of the container engine: mount flags, users, commands, env, restart policies, signals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.engine.containers import parse_restart, parse_signal
from pallet.engine.create_spec import merge_env, resolve_command
from pallet.engine.mounts import check_duplicates, parse_mount, parse_tmpfs, parse_volume
from pallet.engine.paths import lookup_path, secure_join
from pallet.engine.state import MountSpec, validate_name
from pallet.engine.users import resolve_in_rootfs, resolve_user
from pallet.errors import InvalidArgument

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:app\naudio:x:29:app,other\napp:x:1000:\n"


def test_volume_flag_forms(tmp_path: Path) -> None:
    m = parse_volume(f"{tmp_path}:/data:ro")
    assert (m.type, m.source, m.destination, m.read_only) == ("bind", str(tmp_path), "/data", True)
    m = parse_volume("named:/data")
    assert (m.type, m.source, m.anonymous) == ("volume", "named", False)
    m = parse_volume("/only")
    assert (m.type, m.source, m.anonymous) == ("volume", "", True)
    m = parse_volume("/anon:ro")
    assert m.destination == "/anon" and m.read_only
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        parse_volume(f"{tmp_path}/missing:/x")
    for bad in ("", "a:b:c:d", "x:relative", "/a:/b:bogus", "bad name!:/x"):
        with pytest.raises(InvalidArgument):
            parse_volume(bad)


def test_mount_flag(tmp_path: Path) -> None:
    m = parse_mount(f"type=bind,source={tmp_path},target=/t,readonly")
    assert (m.type, m.source, m.destination, m.read_only) == ("bind", str(tmp_path), "/t", True)
    m = parse_mount("type=volume,src=v1,dst=/v,volume-nocopy")
    assert (m.source, m.nocopy) == ("v1", True)
    m = parse_mount("type=tmpfs,target=/run,tmpfs-size=64m")
    assert m.type == "tmpfs" and "size=64m" in m.options
    with pytest.raises(InvalidArgument, match='invalid mount config for type "bind": bind source path'):
        parse_mount(f"type=bind,source={tmp_path}/nope,target=/x")
    with pytest.raises(InvalidArgument, match="Target must not be empty"):
        parse_mount("type=volume,source=x")
    with pytest.raises(InvalidArgument, match="unknown mount type"):
        parse_mount("type=nfs,target=/x")
    with pytest.raises(InvalidArgument, match="unexpected key"):
        parse_mount("type=bind,source=/,target=/x,colour=blue")


def test_tmpfs_and_duplicates() -> None:
    t = parse_tmpfs("/scratch:rw,size=1m")
    assert t.destination == "/scratch" and t.options == ("size=1m",)
    with pytest.raises(InvalidArgument):
        parse_tmpfs("relative")
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        check_duplicates([MountSpec("tmpfs", "/x"), MountSpec("volume", "/x", "v")])


def test_users_and_supplementary_groups() -> None:
    u = resolve_user("app", PASSWD, GROUP)
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1000, (10, 29), "/home/app")
    u = resolve_user("app:audio", PASSWD, GROUP)
    assert (u.gid, u.additional_gids) == (29, ())
    u = resolve_user("4242:77", PASSWD, GROUP)
    assert (u.uid, u.gid, u.home) == (4242, 77, "/")
    assert resolve_user("", PASSWD, GROUP).home == "/root"
    with pytest.raises(InvalidArgument, match="unable to find user nobody2: no matching entries in passwd file"):
        resolve_user("nobody2", PASSWD, GROUP)
    with pytest.raises(InvalidArgument, match="unable to find group nogrp"):
        resolve_user("app:nogrp", PASSWD, GROUP)


def test_secure_join_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "escape").symlink_to("/etc")
    (root / "up").symlink_to("../../../../..")
    assert secure_join(root, "/escape/passwd") == root / "etc" / "passwd"
    assert secure_join(root, "/up/etc/passwd") == root / "etc" / "passwd"
    assert secure_join(root, "../../etc/shadow") == root / "etc" / "shadow"
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("/etc/passwd")  # must not read the host's file
    u = resolve_in_rootfs("", root)
    assert u.uid == 0 and u.home == "/"  # no passwd inside: defaults, not the host's entries
    with pytest.raises(InvalidArgument, match="unable to find user root"):
        resolve_in_rootfs("root", root)


def test_lookup_path(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    assert lookup_path(tmp_path, "tool", "/usr/bin:/bin") == tmp_path / "bin" / "tool"
    assert lookup_path(tmp_path, "nope", "/bin") is None
    assert lookup_path(tmp_path, "/bin/tool", "") == tmp_path / "bin" / "tool"


def test_command_resolution_follows_docker() -> None:
    assert resolve_command(None, ("sh",), None, ()) == (None, ("sh",), ["sh"])
    assert resolve_command(("/ep",), ("a",), None, ("b",)) == (("/ep",), ("b",), ["/ep", "b"])
    # --entrypoint resets the image's CMD
    assert resolve_command(("/ep",), ("a",), "/other", ()) == (("/other",), None, ["/other"])
    assert resolve_command(("/ep",), ("a",), "", ("x", "y"))[2] == ["x", "y"]
    with pytest.raises(InvalidArgument, match="no command specified"):
        resolve_command(None, None, None, ())


def test_env_merge_and_names() -> None:
    assert merge_env(("A=1", "PATH=/bin"), ("A=2", "B=")) == ("A=2", "PATH=/bin", "B=")
    assert validate_name("/web-1.a_b") == "web-1.a_b"
    for bad in ("a", "-x", "has space", "x/y"):
        with pytest.raises(InvalidArgument, match="Invalid container name"):
            validate_name(bad)


def test_restart_policy_and_signals() -> None:
    assert parse_restart("no") == ("no", 0)
    assert parse_restart("on-failure:3") == ("on-failure", 3)
    assert parse_restart("unless-stopped") == ("unless-stopped", 0)
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(InvalidArgument):
            parse_restart(bad)
    assert parse_signal("SIGTERM") == 15 and parse_signal("kill") == 9 and parse_signal("10") == 10
    assert parse_signal("SIGRTMIN+1") > 32
    for bad in ("SIGNOPE", "0", "999"):
        with pytest.raises(InvalidArgument, match="Invalid signal"):
            parse_signal(bad)

"""--userns=auto: the flag, subordinate id files, range allocation, the spec (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pallet.config import Config
from pallet.engine import resources, security, userns
from pallet.errors import Conflict, InvalidArgument, PalletError
from pallet.runtime import pallet_runtime


def test_parse_size() -> None:
    assert userns.parse_size(None) is None
    assert userns.parse_size("") is None
    assert userns.parse_size("host") is None
    assert userns.parse_size("auto") == 65536
    assert userns.parse_size("auto:size=1000") == 1000
    for bad in ("auto:size=0", "auto:size=x", "auto:uidmapping=0:1:2", "keep-id", "auto:size"):
        with pytest.raises(InvalidArgument):
            userns.parse_size(bad)


def test_flags_keep_the_mode_as_given() -> None:
    assert resources.parse_flags(userns="auto") == {"UsernsMode": "auto"}
    assert resources.parse_flags(userns="auto:size=4096") == {"UsernsMode": "auto:size=4096"}
    with pytest.raises(InvalidArgument, match="privileged mode is incompatible with user namespaces"):
        resources.parse_flags(userns="auto", privileged=True)
    with pytest.raises(InvalidArgument, match='invalid USER mode "private"'):
        resources.parse_flags(userns="private")


def test_parse_subid() -> None:
    text = "alice:100000:65536\ncontainers:2147483647:2147483648\n# x\ncontainers:5:0\ncontainers:bad:1\n"
    assert userns.parse_subid(text) == [(2147483647, 2147483648)]
    assert userns.parse_subid(text, "alice") == [(100000, 65536)]
    assert userns.parse_subid("") == []


def test_first_fit() -> None:
    avail = [(1000, 100)]
    assert userns.first_fit(avail, [], 10) == 1000
    assert userns.first_fit(avail, [(1000, 10)], 10) == 1010
    assert userns.first_fit(avail, [(1010, 10)], 10) == 1000  # the hole before a range
    assert userns.first_fit(avail, [(1005, 10)], 10) == 1015
    assert userns.first_fit(avail, [(1000, 95)], 10) is None
    assert userns.first_fit([(0, 5), (100, 50)], [(100, 20)], 10) == 120  # the next entry
    assert userns.first_fit(avail, [(0, 10), (5000, 10)], 100) == 1000  # ranges outside ignored


def _config(tmp_path: Path, subid: str | None = "containers:100000:300000\n") -> Config:
    f = tmp_path / "subid"
    if subid is not None:
        f.write_text(subid)
    return Config(root=tmp_path / "root", run_root=tmp_path / "run",
                  extra={"userns.subuid": str(f), "userns.subgid": str(f),
                         "userns.dir": str(tmp_path / "alloc")})


def test_allocations_disjoint_freed_and_stale(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    alloc = userns.Allocations(cfg)
    ra = alloc.allocate(a, 65536)
    rb = alloc.allocate(b, 65536)
    assert ra == userns.Range(100000, 100000, 65536)
    assert rb.uid == 165536 and rb.gid == 165536
    assert alloc.allocate(a, 65536) == ra  # the owner's own range is not in its way
    alloc.release(a)
    assert alloc.allocate(c, 1000) == userns.Range(100000, 100000, 1000)  # a's ids are free again
    b.rmdir()  # b's container is gone without a release (a crash): its range is stale
    assert set(alloc.all()) == {str(c)}
    with pytest.raises(Conflict, match="could not find enough available IDs"):
        alloc.allocate(a, 300000)
    on_disk = json.loads((tmp_path / "alloc" / "ranges.json").read_text())
    assert on_disk == {str(c): {"uid": 100000, "gid": 100000, "size": 1000}}


def test_claim_after_reboot(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    alloc = userns.Allocations(cfg)
    alloc.claim(a, userns.Range(100000, 100000, 100))
    assert alloc.all() == {str(a): userns.Range(100000, 100000, 100)}
    with pytest.raises(Conflict, match="held by another container"):
        alloc.claim(b, userns.Range(100050, 100050, 100))


def test_no_subuid_entry_is_one_clear_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path, subid="alice:100000:65536\n")
    d = tmp_path / "c"
    d.mkdir()
    with pytest.raises(InvalidArgument) as e:
        userns.Allocations(cfg).allocate(d, 65536)
    msg = str(e.value)
    assert 'no subuid ranges found for user "containers"' in msg and "\n" not in msg
    assert isinstance(e.value, PalletError) and e.value.exit_code == 125
    (tmp_path / "subid").unlink()
    with pytest.raises(InvalidArgument, match="no subuid ranges"):
        userns.subids(cfg, "subuid")


def _spec(netns_path: str | None = None) -> dict:
    network = {"type": "network", "path": netns_path} if netns_path else {"type": "network"}
    return {
        "root": {"path": "/c/rootfs"},
        "mounts": [{"destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]}],
        "linux": {"namespaces": [{"type": "pid"}, network, {"type": "mount"}]},
    }


def test_apply_own_netns_keeps_sysfs() -> None:
    spec = _spec()
    userns.apply(spec, userns.Range(5000, 6000, 100))
    linux = spec["linux"]
    assert linux["namespaces"][0] == {"type": "user"}
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 5000, "size": 100}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 6000, "size": 100}]
    assert spec["mounts"][0]["type"] == "sysfs"


def test_apply_joined_netns_binds_sys_read_only() -> None:
    spec = _spec("/run/pallet/netns/x")
    userns.apply(spec, userns.Range(5000, 5000, 100))
    m = spec["mounts"][0]
    assert m["type"] == "bind" and m["source"] == "/sys"
    assert m["options"][0] == "rbind" and m["options"][-1] == "ro"


def test_security_apply_reads_the_range() -> None:
    seen = []

    def lookup(root: str) -> userns.Range:
        seen.append(root)
        return userns.Range(7000, 7000, 10)

    spec = _spec()
    security.apply(spec, {"UsernsMode": "auto"}, available_caps=security.ALL_CAPS, userns_range=lookup)
    assert seen == ["/c/rootfs"]
    assert spec["linux"]["uidMappings"][0]["hostID"] == 7000
    plain = _spec()
    security.apply(plain, {"UsernsMode": "host"}, available_caps=security.ALL_CAPS, userns_range=lookup)
    assert "uidMappings" not in plain["linux"]
    with pytest.raises(InvalidArgument, match="no user namespace range"):
        security.apply(_spec(), {"UsernsMode": "auto"}, available_caps=security.ALL_CAPS,
                       userns_range=lambda root: None)


def test_record_in_container_dir(tmp_path: Path) -> None:
    assert userns.load(tmp_path) is None
    (tmp_path / userns.RECORD).write_text(json.dumps({"uid": 1, "gid": 2, "size": 3}))
    assert userns.load(tmp_path) == userns.Range(1, 2, 3)
    (tmp_path / userns.RECORD).write_text("{")
    with pytest.raises(InvalidArgument, match="corrupt"):
        userns.load(tmp_path)


def test_search_permission_only_inside_the_root(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    root = outer / "root"
    deep = root / "containers" / "c"
    deep.mkdir(parents=True)
    os.chmod(outer, 0o700)
    for d in (root, root / "containers", deep):
        os.chmod(d, 0o700)
    userns.open_inside(root, deep)
    assert all(os.stat(d).st_mode & 0o7777 == 0o701 for d in (root, root / "containers", deep))
    assert os.stat(outer).st_mode & 0o7777 == 0o700  # nothing outside the root is changed
    with pytest.raises(InvalidArgument, match="is not searchable by other users"):
        userns.check_reachable(deep)
    userns.check_reachable(Path("/usr/bin"))


def test_runtime_host_ids_and_missing_mappings() -> None:
    linux = {"namespaces": [{"type": "user"}],
             "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
             "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 65536}]}
    assert pallet_runtime._host_id(linux, "uidMappings") == 100000
    assert pallet_runtime._host_id(linux, "gidMappings") == 200000
    req: dict = {}
    r, w = pallet_runtime._userns_pipe(linux, req)
    try:
        assert req["userns_fd"] == r and os.get_inheritable(r)
    finally:
        os.close(r)
        os.close(w)
    assert pallet_runtime._userns_pipe({"namespaces": [{"type": "user", "path": "/x"}]}, {}) == (-1, -1)
    with pytest.raises(PalletError, match="no user mapping found"):
        pallet_runtime._userns_pipe({"namespaces": [{"type": "user"}]}, {})

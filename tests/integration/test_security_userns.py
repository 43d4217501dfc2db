"""--userns=auto through ``pallet run``: each container's root is an unprivileged host id.

Runs with ``--runtime runc`` (the reference) and pallet's own runtime.  Subordinate ids
come from a test file (PALLET_SUBUID_FILE/PALLET_SUBGID_FILE), the allocation table from
a test directory (PALLET_USERNS_DIR): the host's files are never touched.  The pallet
root is a directory of its own under /tmp, searchable by other users (the remapped root
must reach its root filesystem; pytest's own temporary tree is private to root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.escape_harness import pallet_runtime_available
from tests.support.cli import Pallet

START = 300_000_000
COUNT = 10_000_000


def _mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pallet-userns-test-", dir="/tmp"))
    os.chmod(d, 0o711)
    (d / "subid").write_text(f"containers:{START}:{COUNT}\n")
    monkeypatch.setenv("PALLET_SUBUID_FILE", str(d / "subid"))
    monkeypatch.setenv("PALLET_SUBGID_FILE", str(d / "subid"))
    monkeypatch.setenv("PALLET_USERNS_DIR", str(d / "alloc"))
    yield d
    for m in sorted(_mounts_under(str(d)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["runc", "pallet"])
def pal(request: pytest.FixtureRequest, base: Path, busybox_tar: Path) -> Iterator[Pallet]:
    if request.param == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if request.param == "pallet" and not pallet_runtime_available():
        pytest.skip("pallet's runtime (pallet.runtime.cli) is not built")
    p = Pallet(base / "root", runtime=request.param)
    p.ok("import", str(busybox_tar), "busybox:test")
    yield p
    ids = p("ps", "-aq").out.split()
    if ids:
        p("rm", "-f", *ids)


def ranges(base: Path) -> dict[str, dict[str, int]]:
    try:
        return dict(json.loads((base / "alloc" / "ranges.json").read_text()))
    except FileNotFoundError:
        return {}


def sh(p: Pallet, *flags: str, script: str) -> str:
    r = p("run", "--rm", "--network", "none", "--userns=auto", *flags, "busybox:test", "sh", "-c", script)
    assert r.rc == 0, r
    return r.out


def test_root_inside_is_the_range_start(pal: Pallet, base: Path) -> None:
    out = sh(pal, script="cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u:%g /bin/busybox /etc")
    lines = out.split("\n")
    assert lines[0].split() == ["0", str(START), "65536"]
    assert lines[1].split() == ["0", str(START), "65536"]
    assert lines[2] == "0"
    assert lines[3:5] == ["0:0", "0:0"]  # the image's files: owned by root, as seen inside
    assert ranges(base) == {}  # --rm gave the range back


def test_proc_and_sysfs_of_its_own(pal: Pallet, base: Path) -> None:
    # with a network namespace of its own (made inside its user namespace) sysfs mounts
    out = sh(pal, script="awk '$2==\"/proc\"||$2==\"/sys\"{print $2, $3}' /proc/mounts; ls /sys/class/net; "
                         "ps -o pid,comm | wc -l")
    lines = out.split("\n")
    assert lines[:3] == ["/proc proc", "/sys sysfs", "lo"]
    assert int(lines[3]) <= 4  # its own pid namespace: sh, ps (and the header)


def test_size_option_and_inspect(pal: Pallet, base: Path) -> None:
    cid = pal.ok("create", "--network", "none", "--userns=auto:size=2000", "busybox:test", "true").strip()
    assert pal.ok("inspect", "-f", "{{.HostConfig.UsernsMode}}", cid).strip() == "auto:size=2000"
    (owner, rng), = ranges(base).items()
    assert owner.endswith(cid) and rng == {"uid": START, "gid": START, "size": 2000}
    assert pal("start", "-a", cid).rc == 0
    pal.ok("rm", cid)
    assert ranges(base) == {}


def test_written_files_belong_to_the_mapped_root_on_the_host(pal: Pallet, base: Path) -> None:
    cid = pal.ok("create", "--network", "none", "--userns=auto", "busybox:test",
                 "sh", "-c", "echo x > /made-inside; mkdir /d; chown 1000:1000 /d; echo y >> /etc/passwd").strip()
    assert pal("start", "-a", cid).rc == 0
    upper = base / "root" / "containers" / cid / "upper"
    st = os.stat(upper / "made-inside")
    assert (st.st_uid, st.st_gid) == (START, START)
    st = os.stat(upper / "d")
    assert (st.st_uid, st.st_gid) == (START + 1000, START + 1000)
    st = os.stat(upper / "etc" / "passwd")  # copied up from an idmapped layer: its mapped owner
    assert (st.st_uid, st.st_gid) == (START, START)
    assert os.stat(upper).st_uid == START  # the top of its rootfs is its root's
    pal.ok("rm", cid)
    assert not (base / "root" / "containers" / cid).exists()
    assert _mounts_under(str(base / "root" / "containers")) == []
    assert ranges(base) == {}


def test_etc_files_and_volumes_are_usable_inside(pal: Pallet, base: Path) -> None:
    out = sh(pal, "-v", "uvol:/data", "--hostname", "remapped",
             script="cat /etc/hostname; grep -c localhost /etc/hosts; test -r /etc/resolv.conf && echo r; "
                    "echo z > /data/f && stat -c %u /data/f")
    assert out.split() == ["remapped", "2", "r", "0"]
    vol = base / "root" / "volumes" / "uvol" / "_data"
    assert os.stat(vol).st_uid == START
    assert os.stat(vol / "f").st_uid == START


def test_two_containers_get_disjoint_ranges_and_rm_frees(pal: Pallet, base: Path) -> None:
    a = pal.ok("run", "-d", "--network", "none", "--userns=auto", "busybox:test", "sleep", "60").strip()
    b = pal.ok("run", "-d", "--network", "none", "--userns=auto", "busybox:test", "sleep", "60").strip()
    maps = {}
    for c in (a, b):
        pid = int(pal.ok("inspect", "-f", "{{.State.Pid}}", c))
        maps[c] = Path(f"/proc/{pid}/uid_map").read_text().split()
        assert pal.ok("exec", c, "id", "-u").strip() == "0"
    assert maps[a] == ["0", str(START), "65536"]
    assert maps[b] == ["0", str(START + 65536), "65536"]
    pal.ok("rm", "-f", a)
    assert [r["uid"] for r in ranges(base).values()] == [START + 65536]
    c = pal.ok("create", "--network", "none", "--userns=auto", "busybox:test", "true").strip()
    assert ranges(base)[str(base / "root" / "containers" / c)]["uid"] == START  # a's range, reused
    pal.ok("rm", "-f", b, c)
    assert ranges(base) == {}
    assert _mounts_under(str(base / "root" / "containers")) == []


def test_ranges_are_shared_by_pallet_roots(pal: Pallet, base: Path, busybox_tar: Path) -> None:
    other = Pallet(base / "root2", runtime=pal.runtime)
    other.ok("import", str(busybox_tar), "busybox:test")
    a = pal.ok("create", "--network", "none", "--userns=auto", "busybox:test", "true").strip()
    b = other.ok("create", "--network", "none", "--userns=auto", "busybox:test", "true").strip()
    table = ranges(base)
    assert table[str(base / "root" / "containers" / a)]["uid"] == START
    assert table[str(base / "root2" / "containers" / b)]["uid"] == START + 65536
    other.ok("rm", b)
    assert list(ranges(base)) == [str(base / "root" / "containers" / a)]


def test_default_network_and_exec(pal: Pallet, base: Path) -> None:
    if pal.runtime == "runc":
        pytest.skip("runc exec joins the user namespace first, then cannot join a network "
                    "namespace the engine made (owned by the host's user namespace)")
    cid = pal.ok("run", "-d", "--userns=auto", "busybox:test", "sleep", "60").strip()
    out = pal.ok("exec", cid, "sh", "-c", "cat /proc/self/uid_map; ip -4 addr show eth0; ls /sys/class/net")
    assert out.split("\n")[0].split() == ["0", str(START), "65536"]
    assert "inet " in out and "eth0" in out
    pal.ok("rm", "-f", cid)


def test_no_subuid_entry_is_one_line_and_125(pal: Pallet, base: Path) -> None:
    (base / "subid").write_text("someone:100000:65536\n")
    r = pal("run", "--rm", "--network", "none", "--userns=auto", "busybox:test", "true")
    assert r.rc == 125, r
    assert r.err.count("\n") == 1 and 'no subuid ranges found for user "containers"' in r.err
    assert "Traceback" not in r.err
    assert pal.ok("ps", "-aq").strip() == ""


# -- walls a remapped root does not get through (the escape suite's userns cases) ----------


def test_escape_remapped_root_cannot_read_a_host_root_0600_file(pal: Pallet, base: Path) -> None:
    secret = base / "secret"
    secret.write_text("host secret\n")
    os.chmod(secret, 0o600)
    out = sh(pal, "-v", f"{secret}:/secret", script="cat /secret 2>&1; echo rc=$?")
    assert "host secret" not in out and "Permission denied" in out and "rc=1" in out


def test_escape_remapped_root_cannot_write_a_host_root_file(pal: Pallet, base: Path) -> None:
    target = base / "hostfile"
    target.write_text("untouched\n")
    os.chmod(target, 0o644)
    out = sh(pal, "-v", f"{target}:/hostfile",
             script="echo pwned > /hostfile 2>&1; echo rc=$?; chmod 666 /hostfile 2>&1; chown 0 /hostfile 2>&1; true")
    assert "rc=1" in out
    assert target.read_text() == "untouched\n"
    st = os.stat(target)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o644)


def test_escape_remapped_root_cannot_use_host_caps(pal: Pallet, base: Path) -> None:
    # CAP_SYS_TIME and friends are not in the set; but even CAP_CHOWN applies only to
    # ids of its own range: a file cannot be given to an id outside it
    out = sh(pal, script="touch /f; chown 70000 /f 2>&1; echo rc=$?; stat -c %u /f")
    assert "rc=1" in out and out.split()[-1] == "0"


# -- the runtimes on bundles: a user namespace joined by path ---------------------------------


@pytest.mark.parametrize("runtime", ["runc", "pallet"])
def test_bundle_joins_a_user_namespace_by_path(runtime: str, base: Path) -> None:
    import secrets
    import sys

    from tests.integration.escape_harness import docker_like_spec
    from tests.support.images import make_busybox_rootfs

    if runtime == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if runtime == "pallet" and not pallet_runtime_available():
        pytest.skip("pallet's runtime (pallet.runtime.cli) is not built")
    rootfs = base / "rootfs"
    make_busybox_rootfs(rootfs)
    os.chmod(rootfs, 0o755)
    state = base / "state"
    argv = (["runc", "--root", str(state)] if runtime == "runc"
            else [sys.executable, "-m", "pallet.runtime.cli", "--root", str(state)])
    maps = [{"containerID": 0, "hostID": START, "size": 65536}]
    parent = f"/pallet-test-userns-{secrets.token_hex(4)}"

    def bundle(name: str, args: list[str], user: dict[str, str]) -> Path:
        b = base / name
        b.mkdir()
        spec = docker_like_spec(args, f"{parent}/{name}", name)
        spec["root"]["path"] = str(rootfs)
        spec["linux"]["namespaces"].insert(0, user)
        spec["linux"]["uidMappings"] = maps
        spec["linux"]["gidMappings"] = maps
        (b / "config.json").write_text(json.dumps(spec))
        return b

    ids = ["holder", "joiner"]
    try:
        holder = bundle("holder", ["sleep", "60"], {"type": "user"})
        subprocess.run([*argv, "run", "-d", "--bundle", str(holder), "holder"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = json.loads(subprocess.run([*argv, "state", "holder"], capture_output=True, text=True).stdout)["pid"]
        joiner = bundle("joiner", ["sh", "-c", "cat /proc/self/uid_map; id -u; touch /tmp/j && echo wrote"],
                        {"type": "user", "path": f"/proc/{pid}/ns/user"})
        r = subprocess.run([*argv, "run", "--bundle", str(joiner), "joiner"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        assert r.returncode == 0, r
        lines = r.stdout.split("\n")
        assert lines[0].split() == ["0", str(START), "65536"]
        assert lines[1:3] == ["0", "wrote"]
        assert os.stat(rootfs / "tmp" / "j").st_uid == START
    finally:
        for i in ids:
            subprocess.run([*argv, "delete", "--force", i], capture_output=True)


# -- the store: an overlay over idmapped layers ------------------------------------------------


def test_snapshot_overlay_over_idmapped_layers_keeps_whiteouts(base: Path) -> None:
    from pallet.engine.userns import Range, userns_fd
    from pallet.store.blobs import BlobStore
    from pallet.store.snapshots import SnapshotStore

    bottom, top = base / "bottom", base / "top"
    (bottom / "d").mkdir(parents=True)
    (bottom / "gone").write_text("deleted above\n")
    (bottom / "d" / "hidden").write_text("under an opaque dir\n")
    (bottom / "kept").write_text("kept\n")
    os.chown(bottom / "kept", 1000, 1000)
    (top / "d").mkdir(parents=True)
    os.mknod(top / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # whiteout
    os.setxattr(top / "d", "trusted.overlay.opaque", b"y")
    (top / "d" / "new").write_text("new\n")
    store = SnapshotStore(base / "store", BlobStore(base / "store"))
    target = base / "c" / "rootfs"
    fd = userns_fd(Range(START, START, 65536))
    try:
        store.mount_idmapped([top, bottom], base / "c" / "upper", base / "c" / "work", target, fd)
    finally:
        os.close(fd)
    try:
        assert sorted(os.listdir(target)) == ["d", "kept"]
        assert os.listdir(target / "d") == ["new"]
        st = os.stat(target / "kept")
        assert (st.st_uid, st.st_gid) == (START + 1000, START + 1000)
        assert os.stat(target / "d" / "new").st_uid == START
        # only the overlay is left mounted: the idmapped layers were attached just for it
        assert _mounts_under(str(base)) == [str(target)]
        assert [p.name for p in (base / "c").iterdir() if p.name.startswith(".idmap")] == []
        # what is written goes to the upper dir with host ids
        (target / "kept").write_text("changed\n")
        assert os.stat(base / "c" / "upper" / "kept").st_uid == START + 1000
        assert (bottom / "kept").read_text() == "kept\n"
    finally:
        store.unmount(target)
    assert _mounts_under(str(base)) == []

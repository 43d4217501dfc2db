"""``cp`` between a container's filesystem and the host (or a tar stream), never leaving the rootfs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pallet.engine.paths import secure_join
from pallet.engine.state import Container
from pallet.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from pallet.engine.containers import ContainerService


@contextlib.contextmanager
def container_fs(svc: ContainerService, c: Container) -> Iterator[Path]:
    """The container's merged root filesystem, mounted for the duration if it is stopped."""
    from pallet.engine.rootfs import Images, is_mountpoint, unmount_all

    if is_mountpoint(c.rootfs):
        yield c.rootfs
        return
    images = Images(svc.config)
    images.mount(images.get(c.spec.image_id), c.dir / "upper", c.dir / "work", c.rootfs)
    try:
        yield c.rootfs
    finally:
        unmount_all(c.rootfs)


def host_path(c: Container, root: Path, path: str) -> Path:
    """Where ``path`` of the container lives on the host (a volume or bind mount, or the rootfs)."""
    norm = os.path.normpath("/" + path)
    best = None
    for m in c.spec.mounts:
        d = m.destination.rstrip("/") or "/"
        if (norm == d or norm.startswith(d + "/")) and m.type in ("bind", "volume") and (
            best is None or len(d) > len(best[0])
        ):
            best = (d, m)
    if best is not None:
        d, m = best
        src = m.source if m.type == "bind" else str(c.dir.parent.parent / "volumes" / m.source / "_data")
        return secure_join(Path(src), norm[len(d):])
    return secure_join(root, norm)


def copy_from(svc: ContainerService, c: Container, src: str, dest: str, out: IO[bytes] | None = None) -> None:
    with container_fs(svc, c) as root:
        p = host_path(c, root, src)
        if not os.path.lexists(p):
            raise NotFound(f"Could not find the file {src} in container {c.name}")
        contents = src.endswith("/.")
        if dest == "-":
            assert out is not None
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                if contents:
                    for e in sorted(os.listdir(p)):
                        tf.add(str(p / e), arcname=e)
                else:
                    tf.add(str(p), arcname=os.path.basename(os.path.normpath(src)) or ".")
            return
        target = Path(dest)
        if target.is_dir() and not contents:
            target = target / os.path.basename(os.path.normpath(src))
        elif not target.parent.exists():
            raise InvalidArgument(f"no such directory: {target.parent}")
        _copy(p, target, contents)


def copy_to(svc: ContainerService, c: Container, src: str, dest: str, inp: IO[bytes] | None = None) -> None:
    with container_fs(svc, c) as root:
        target = host_path(c, root, dest)
        if src == "-":
            assert inp is not None
            if not target.is_dir():
                raise InvalidArgument(f"destination \"{c.name}:{dest}\" must be a directory")
            _extract(c, root, dest, inp)
            return
        s = Path(src)
        if not os.path.lexists(s):
            raise InvalidArgument(f"stat {src}: no such file or directory")
        contents = src.endswith("/.")
        if target.is_dir() and not contents:
            target = target / s.name
        elif not target.parent.exists():
            raise InvalidArgument(f"no such directory: {dest}")
        # the resolved target must stay inside the container's view
        target = host_path(c, root, str(target)[len(str(root)):]) if str(target).startswith(str(root)) else target
        _copy(s, target, contents)


def _extract(c: Container, root: Path, dest: str, inp: IO[bytes]) -> None:
    """Unpack a tar stream under ``dest``: every path resolved inside the container's view."""
    from pallet.errors import UnsafeArchive

    with tarfile.open(fileobj=inp, mode="r|*") as tf:
        for m in tf:
            name = os.path.normpath(m.name)
            if name.startswith("/") or name == ".." or name.startswith("../"):
                raise UnsafeArchive(m.name, "path outside the destination")
            if name == ".":
                continue
            hp = host_path(c, root, f"{dest}/{name}")
            hp.parent.mkdir(parents=True, exist_ok=True)
            if m.isdir():
                hp.mkdir(exist_ok=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    if hp.is_dir() and not hp.is_symlink():
                        shutil.rmtree(hp)
                    else:
                        hp.unlink()
                if m.issym():
                    os.symlink(m.linkname, hp)
                elif m.islnk():
                    os.link(host_path(c, root, f"{dest}/{os.path.normpath(m.linkname)}"), hp)
                elif m.isfile():
                    f = tf.extractfile(m)
                    assert f is not None
                    with open(hp, "xb") as out:
                        shutil.copyfileobj(f, out)
                else:
                    continue  # devices and fifos are not copied into containers
            with contextlib.suppress(OSError):
                os.lchown(hp, m.uid, m.gid)
            if not m.issym():
                os.chmod(hp, m.mode & 0o7777)
                os.utime(hp, (m.mtime, m.mtime))


def _copy(src: Path, dst: Path, contents: bool) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        if dst.is_dir() and not dst.is_symlink():
            dst = dst / src.name
        shutil.copy2(src, dst, follow_symlinks=False)
    del contents


def split_arg(arg: str) -> tuple[str, str]:
    """``NAME:PATH`` -> (NAME, PATH); a host path -> ("", PATH).  Paths with '/' before ':' are local."""
    if arg == "-" or arg.startswith("/") or arg.startswith("."):
        return "", arg
    name, sep, path = arg.partition(":")
    if not sep or "/" in name:
        return "", arg
    return name, path

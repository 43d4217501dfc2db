"""``pallet build`` in the engine: the builder wired to the image store and to the runtime that
runs RUN steps (host network, the host's resolv.conf, Docker's default security settings)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from pallet.build.builder import Builder, BuildOptions
from pallet.build.context import open_context
from pallet.config import Config
from pallet.engine.images import ImageService, host_arch

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

    from pallet.build.run import RunRequest
    from pallet.store import Image

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def build_dir(config: Config) -> Path:
    return config.root / "builder"


class RuntimeExecutor:
    """Runs a RUN step's command in a container of the configured low-level runtime."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def run(self, req: RunRequest, output: Callable[[bytes], None]) -> int:
        import shutil

        from pallet.engine.resources import apply_to_spec
        from pallet.engine.runtimes import open_runtime, runtime_name
        from pallet.engine.spec_builder import resolv_conf
        from pallet.engine.users import resolve_in_rootfs
        from pallet.linux.syscalls import set_child_subreaper
        from pallet.oci.spec import default_spec

        user = resolve_in_rootfs(req.user, req.rootfs)
        env = [e for e in req.env if not e.startswith("HOSTNAME=")]
        env.insert(1 if env and env[0].startswith("PATH=") else 0, f"HOSTNAME={req.id[:12]}")
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home or '/'}")
        # as Docker (runc's user lookup): without supplementary groups the primary group is one
        groups = list(user.additional_gids) or [user.gid]
        spec = default_spec(list(req.args), env=env, cwd=req.cwd, uid=user.uid, gid=user.gid,
                            additional_gids=groups, hostname=req.id[:12])
        spec["root"] = {"path": str(req.rootfs), "readonly": False}
        bundle = req.rootfs.parent / "bundle"
        bundle.mkdir(exist_ok=True)
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        (bundle / "resolv.conf").write_text(resolv_conf(host_resolv))
        (bundle / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        mounts = spec["mounts"]
        if req.network != "none":
            mounts.append({"destination": "/etc/resolv.conf", "type": "bind",
                           "source": str(bundle / "resolv.conf"), "options": ["rbind", "ro"]})
            mounts.append({"destination": "/etc/hosts", "type": "bind",
                           "source": str(bundle / "hosts"), "options": ["rbind", "ro"]})
            spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
        for m in req.mounts:
            opts = ["rbind", "ro" if m.read_only else "rw"]
            mounts.append({"destination": m.destination, "type": "bind", "source": m.source, "options": opts})
        spec["linux"]["cgroupsPath"] = f"/pallet-build/{req.id}"
        spec = apply_to_spec(spec, {})
        (bundle / "config.json").write_text(json.dumps(spec))
        name = runtime_name(self.config, None, None)
        if name == "vm":
            name = "pallet"
        rt = open_runtime(self.config, name)
        set_child_subreaper()
        r, w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        created = False
        try:
            try:
                pid = rt.create(req.id, str(bundle), stdin=devnull, stdout=w, stderr=w)
                created = True
            finally:
                os.close(w)
                os.close(devnull)
            rt.start(req.id)
            status = _pump(pid, r, output)
        finally:
            os.close(r)
            if created:
                with contextlib.suppress(Exception):
                    rt.delete(req.id, force=True)
            shutil.rmtree(bundle, ignore_errors=True)
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else 255


def _pump(pid: int, fd: int, output: Callable[[bytes], None]) -> int:
    import select

    status: int | None = None
    eof = False
    while not eof or status is None:
        if not eof:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                data = os.read(fd, 65536)
                if data:
                    output(data)
                else:
                    eof = True
        if status is None:
            with contextlib.suppress(ChildProcessError):
                while True:
                    got, st = os.waitpid(-1, os.WNOHANG)
                    if got == 0:
                        break
                    if got == pid:
                        status = st
                        break
            if status is None and eof:
                select.select([], [], [], 0.05)
            if status is not None and not eof:
                # the process is gone; read what is left, but do not wait for its descendants
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    eof = True
    return status


def host_proxy_env() -> tuple[str, ...]:
    return tuple(f"{k}={os.environ[k]}" for k in PROXY_VARS if os.environ.get(k))


def build(
    config: Config,
    context: str,
    opts: BuildOptions,
    *,
    dockerfile: str | None = None,
    out: TextIO,
    stdin: BinaryIO | None = None,
) -> Image:
    svc = ImageService(config)
    work = build_dir(config)
    work.mkdir(parents=True, exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)
    _remove_stale(work / "tmp")
    builder = Builder(svc.store, work, RuntimeExecutor(config), out,
                      resolve_image=lambda name: _resolve(config, svc, name, opts.pull, out),
                      host_platform=f"linux/{host_arch()}")
    with svc.gc_lock(), open_context(context, dockerfile, stdin=stdin, workdir=work / "tmp") as ctx:
        return builder.build(ctx, opts)


def _resolve(config: Config, svc: ImageService, name: str, pull: bool, out: TextIO) -> Image:
    """A base image: from the store, else pulled (always pulled with ``--pull``), as Docker does."""
    from pallet.errors import ImageNotFound, PalletError

    if not pull:
        try:
            return svc.store.images.lookup(name)
        except ImageNotFound:
            pass
    try:
        from pallet.engine.distribution import pull as do_pull

        do_pull(config, name, out=out)
    except (PalletError, OSError) as e:
        if pull:
            with contextlib.suppress(ImageNotFound):
                return svc.store.images.lookup(name)  # offline: the local copy
        err = ImageNotFound(name)
        err.message = str(e) or err.message
        raise err from None
    return svc.store.images.lookup(name)


def _remove_stale(tmp: Path, max_age: float = 3600.0) -> None:
    """Temporary dirs of builds that died long ago (their overlay may still be mounted)."""
    import time

    now = time.time()
    for d in tmp.iterdir():
        try:
            age = now - d.stat().st_mtime
        except OSError:
            continue
        if age > max_age:
            from pallet.linux.mounts import remove_tree

            remove_tree(d)


def prune(config: Config, all_: bool = False) -> int:
    """``builder prune``: the step cache, cache mounts, hash and parse caches; bytes reclaimed."""
    from pallet.linux.mounts import remove_tree

    work = build_dir(config)
    if not work.exists():
        return 0
    from pallet.build.cache import StepCache

    total = 0
    svc = ImageService(config)
    steps = StepCache(work, svc.store.blobs)
    candidates: set[str] = set()
    for key in steps.step_keys():
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            entry: Any = steps.entry(key)
            candidates.add(str(entry["config"]))
            candidates.update(str(d["digest"]) for d in entry["layers"])
    for name in ("cache.json", "hashes.json", "parsed.json"):
        p = work / name
        if p.exists():
            total += p.stat().st_size
            p.unlink()
    for name in ("steps", "mounts", "hashes"):
        d = work / name
        if d.exists():
            for dirpath, _d, files in os.walk(d):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.lstat(os.path.join(dirpath, f)).st_size
            remove_tree(d)
    # the blobs only the cache held (images keep theirs); skipped while a build or pull runs
    with contextlib.suppress(Exception):
        total += svc.gc(candidates=candidates)
    return total

"""The RUN instruction of the builder: command line, history record, cache key, mounts and the
container run over an overlay of the parent's layers (the container machinery is imported only
when a step misses the cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pallet.build import dispatch
from pallet.build.lex import expand_word
from pallet.build.parser import BuildError, Dockerfile, Instruction
from pallet.oci import mediatypes as mt
from pallet.oci.manifest import Descriptor

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from pallet.build.builder import Builder, BuildOptions, _State
    from pallet.build.context import Context
    from pallet.build.run import BindMount


def parse_mount(spec: str) -> dict[str, str]:
    """The fields of a ``RUN --mount=...`` flag, Docker's aliases folded (src, dst...)."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        k, eq, v = part.partition("=")
        k = k.strip().lower()
        out[k] = v if eq else "true"
    out.setdefault("type", "bind")
    if "dst" in out:
        out.setdefault("target", out.pop("dst"))
    if "destination" in out:
        out.setdefault("target", out.pop("destination"))
    if "src" in out:
        out.setdefault("source", out.pop("src"))
    if out["type"] not in ("bind", "cache", "secret", "tmpfs", "ssh"):
        raise BuildError(f"unsupported mount type {out['type']!r}")
    return out


def command_of(ins: Instruction, cc: dispatch.ContainerConfig) -> list[str]:
    if ins.heredocs and not ins.json and ins.args:
        first = ins.args[0].strip()
        h = ins.heredocs[0]
        if first.lstrip("<-").strip("'\"") == h.name:
            return [*dispatch.shell_of(cc), h.content]
        body = ins.args[0]
        for hd in ins.heredocs:
            body += "\n" + hd.content + hd.name
        return [*dispatch.shell_of(cc), body]
    return dispatch.command_line(ins, cc)


def run_step(b: Builder, df: Dockerfile, st: _State, ins: Instruction, done: list[_State], ctx: Context,
             opts: BuildOptions) -> _State:
    from pallet.build.builder import _sha

    cc = st.cc
    cmd = command_of(ins, cc)
    if not cmd:
        raise BuildError("RUN requires at least one argument")
    allowed = st.args.filter_allowed(cc.env)
    hist_args = st.args.history_args(cc.env)
    save = ([f"|{len(hist_args)}", *hist_args] if allowed else []) + cmd
    created_by = " ".join(save)
    env_now = cc.env_dict()
    for kv in allowed:
        k, _, v = kv.partition("=")
        env_now[k] = v
    network = ins.flag("network") or opts.network or "default"
    if network not in ("default", "host", "none"):
        raise BuildError(f"unsupported network mode for RUN: {network}")
    mounts = [parse_mount(expand_word(m, env_now, df.escape)) for m in ins.flags.get("mount", ())]
    key = _sha(st.key, "RUN", json.dumps(save), json.dumps(sorted(cc.env)), cc.user, cc.working_dir,
               json.dumps(mounts, sort_keys=True), network)

    def layer() -> Descriptor | None:
        if b.executor is None:
            raise BuildError("RUN needs a container runtime, which is not available")
        return _execute(b, st, cmd, env_now, mounts, network, done, ctx, opts)

    return b._advance(st, cc, created_by, key, layer)


def _execute(b: Builder, st: _State, cmd: list[str], env: dict[str, str], mounts: list[dict[str, str]],
             network: str, done: list[_State], ctx: Context, opts: BuildOptions) -> Descriptor | None:
    from pallet.build.run import RunRequest, cleanup_mount_points
    from pallet.store.layers import diff

    for kv in opts.host_proxy_env:
        k, _, v = kv.partition("=")
        env.setdefault(k, v)
    cid = os.urandom(32).hex()
    b.say(f" ---> Running in {cid[:12]}")
    lookup = b._image_lookup(st)
    with b._mounted(st, writable=True) as (rootfs, upper), _Extra(b) as extra:
        binds = _binds(b, st, mounts, done, ctx, opts, extra)
        cwd = st.cc.working_dir or "/"
        wd = rootfs / cwd.lstrip("/")
        if not wd.exists():
            wd.mkdir(parents=True, mode=0o755)
        req = RunRequest(cid, rootfs, tuple(cmd), tuple(f"{k}={v}" for k, v in env.items()), cwd,
                         st.cc.user, "none" if network == "none" else "host", tuple(binds))
        tail: list[bytes] = []

        def output(chunk: bytes) -> None:
            if not opts.quiet:
                os.write(b.out.fileno(), chunk) if _has_fileno(b.out) else b.out.write(chunk.decode(errors="replace"))
            tail.append(chunk)
            if len(tail) > 64:
                del tail[:-64]

        if _has_fileno(b.out):
            b.out.flush()
        code = b.executor.run(req, output) if b.executor is not None else 127
        if code != 0:
            lines = b"".join(tail).decode(errors="replace").splitlines()[-10:]
            b.tail = lines
            raise RunFailed(" ".join(cmd), code, lines)
        for m in binds:
            _drop_empty_target(upper, m.destination, lookup)
        cleanup_mount_points(upper, lambda rel: lookup(rel) is not None)
        with b.store.blobs.writer() as w:
            diff(upper, w)  # type: ignore[arg-type]
        b.say(f"Removing intermediate container {cid[:12]}")
        return Descriptor(mt.OCI_LAYER, w.digest, w.size)


class RunFailed(BuildError):
    def __init__(self, command: str, code: int, tail: list[str]) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {code}")
        self.code = code
        self.exit_code = code if 0 < code < 256 else 1  # docker build exits with the command's code
        self.tail = tail


def _has_fileno(f: object) -> bool:
    try:
        f.fileno()  # type: ignore[attr-defined]
        return True
    except (AttributeError, OSError, ValueError):
        return False


class _Extra:
    """Temporary mounts of other stages for ``--mount=type=bind,from=``; unmounted at exit."""

    def __init__(self, b: Builder) -> None:
        import contextlib

        self.b = b
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> _Extra:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


def _binds(b: Builder, st: _State, mounts: list[dict[str, str]], done: list[_State], ctx: Context,
           opts: BuildOptions, extra: _Extra) -> list[BindMount]:
    from pallet.build.run import BindMount
    from pallet.linux.mounts import remove_tree

    out: list[BindMount] = []
    for m in mounts:
        t = m["type"]
        target = m.get("target", "")
        if t == "secret":
            sid = m.get("id") or os.path.basename(target)
            target = target or f"/run/secrets/{sid}"
            src = opts.secrets.get(sid)
            if src is None:
                if m.get("required", "false") == "true":
                    raise BuildError(f"secret {sid} not found")
                continue
            out.append(BindMount(str(Path(src).resolve()), target, True))
            continue
        if not target:
            raise BuildError(f"mount type={t} requires a target")
        if t == "cache":
            cid = m.get("id") or target
            d = b.work / "mounts" / _safe(cid)
            d.mkdir(parents=True, exist_ok=True)
            out.append(BindMount(str(d), target, m.get("readonly", m.get("ro", "false")) == "true"))
        elif t == "bind":
            src_rel = m.get("source", ".")
            root: Path
            if m.get("from"):
                src_state = b._from_source(b_df(b), st, m["from"], done)
                root, _ = extra.stack.enter_context(b._mounted(src_state, writable=False))
            else:
                if ctx.root is None:
                    raise BuildError("mount type=bind needs a build context")
                root = ctx.root
            bsrc = (root / src_rel.lstrip("/")).resolve()
            if not str(bsrc).startswith(str(root.resolve())):
                raise BuildError(f"mount source {src_rel} is outside its root")
            out.append(BindMount(str(bsrc), target, m.get("rw", m.get("readwrite", "false")) != "true"))
        elif t == "tmpfs":
            d = b.work / "tmp" / ("tmpfs-" + os.urandom(6).hex())
            d.mkdir(parents=True)
            extra.stack.callback(remove_tree, d)
            out.append(BindMount(str(d), target, False))
        else:
            raise BuildError(f"mount type={t} is not supported by pallet's builder")
    return out


def b_df(b: Builder) -> Dockerfile:
    df = getattr(b, "current_df", None)
    assert df is not None
    return df


def _safe(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _drop_empty_target(upper: Path, dest: str, lookup: object) -> None:
    """A mount point made for a RUN --mount is not part of the layer (as in buildkit)."""
    rel = dest.lstrip("/")
    p = upper / rel
    look = lookup  # Callable[[str], stat | None]
    if not os.path.lexists(p) or look(rel) is not None:  # type: ignore[operator]
        return
    try:
        if p.is_dir() and not p.is_symlink():
            if not any(p.iterdir()):
                p.rmdir()
        elif p.stat().st_size == 0:
            p.unlink()
    except OSError:
        pass

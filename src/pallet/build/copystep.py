"""The COPY and ADD instructions of the builder: sources from the context, another stage or an
image (``--from``), URLs for ADD, the cache key from the sources' hash, and the layer written
straight from the plan (no container)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

from pallet.build.copy import TreeSource, plan, plan_digest
from pallet.build.lex import expand_word
from pallet.build.parser import BuildError, Dockerfile, Instruction

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from pallet.build.builder import Builder, _State
    from pallet.build.context import Context
    from pallet.build.copy import Source


def copy_step(b: Builder, df: Dockerfile, st: _State, ins: Instruction, env: dict[str, str],
              done: list[_State], ctx: Context) -> _State:
    from pallet.build.builder import _sha

    words = [expand_word(a, env, df.escape) for a in ins.args]
    srcs, dest = words[:-1], words[-1]
    chown = chown_ids(b, st, expand_word(ins.flag("chown"), env, df.escape)) if ins.flag("chown") else None
    chmod = None
    if ins.flag("chmod"):
        try:
            chmod = int(expand_word(ins.flag("chmod"), env, df.escape), 8)
        except ValueError:
            raise BuildError(f"invalid chmod parameter: {ins.flag('chmod')}") from None
    heredocs = {h.name: h.content.encode() for h in ins.heredocs}
    srcs = [s[2:].lstrip("-") if s.startswith("<<") and s[2:].lstrip("-") in heredocs else s for s in srcs]
    frm = ins.flag("from")
    downloads: dict[str, tuple[Path, float]] = {}
    with contextlib.ExitStack() as stack:
        source: Source | None = ctx if ctx.root is not None else None
        if frm:
            if ins.cmd == "ADD":
                raise BuildError("ADD does not support the --from flag")
            src_state = b._from_source(df, st, expand_word(frm, env, df.escape), done)
            root, _ = stack.enter_context(b._mounted(src_state, writable=False))
            source = TreeSource(root)
        if ins.cmd == "ADD":
            for s in srcs:
                if s.startswith(("http://", "https://")):
                    downloads[s] = _download(b, s, stack)
            want = expand_word(ins.flag("checksum"), env, df.escape) if ins.flag("checksum") else ""
            if want:
                if len(downloads) != 1 or len(srcs) != 1:
                    raise BuildError("checksum can't be specified for multiple sources or local files")
                got = file_digest(next(iter(downloads.values()))[0])
                if got != (want if ":" in want else "sha256:" + want):
                    raise BuildError(f"digest mismatch {got}: {want}")
        from pallet.build import stagefs

        resolve = stagefs.resolver(b.store, st)
        p = plan(source, srcs, dest, workdir=st.cc.working_dir, chown=chown, chmod=chmod,
                 is_add=ins.cmd == "ADD", image_stat=b._image_lookup(st), heredocs=heredocs,
                 downloads=downloads, cmd=ins.cmd, resolve=lambda rel: resolve(rel)[0])
        digest = plan_digest(p, b.hashes)
        kind = p.hash_kind()
        shown = f"{kind}:{digest.split(':', 1)[1]}"
        if ins.flag("chown"):
            # Docker's classic builder writes the flag right against the hash, without a space
            shown = f"--chown={ins.flag('chown')}{shown}"
        created_by = b._created_by(st, f"{ins.cmd} {shown} in {dest} ", one_arg=True)
        key = _sha(st.key, created_by, frm, ins.flag("chown"), ins.flag("chmod"))
        return b._advance(st, st.cc, created_by, key, lambda: b._write_plan(p))


def _download(b: Builder, url: str, stack: contextlib.ExitStack) -> tuple[Path, float]:
    import email.utils
    import urllib.request

    from pallet.linux.mounts import remove_tree

    tmp = b.work / "tmp" / os.urandom(8).hex()
    tmp.mkdir(parents=True)
    stack.callback(remove_tree, tmp)
    dst = tmp / "download"
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dst, "wb") as f:  # noqa: S310
            while chunk := r.read(1 << 20):
                f.write(chunk)
            lm = r.headers.get("Last-Modified")
    except OSError as e:
        raise BuildError(f"failed to download {url}: {e}") from None
    mtime = time.time()
    if lm:
        with contextlib.suppress(TypeError, ValueError):
            mtime = email.utils.parsedate_to_datetime(lm).timestamp()
    return dst, mtime


def chown_ids(b: Builder, st: _State, spec: str) -> tuple[int, int]:
    """``--chown=user:group`` as numbers, names looked up in the image's passwd and group files."""
    user, _, group = spec.partition(":")
    look = b._image_lookup(st)

    def table(name: str) -> list[list[str]]:
        for lower in b._lowers(st) if look("etc/" + name) is not None else []:
            p = lower / "etc" / name
            if p.is_file():
                return [ln.split(":") for ln in p.read_text(errors="replace").splitlines() if ln]
        return []

    def find(val: str, name: str) -> tuple[int, int]:
        if val.isdigit():
            return int(val), -1
        for row in table(name):
            if row[0] == val and len(row) > 3:
                return int(row[2]), int(row[3]) if name == "passwd" else -1
        what = f"uid for user {val}: no such user" if name == "passwd" else f"gid for group {val}: no such group"
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find {what}: {val}")

    uid, _pgid = find(user, "passwd")
    # as Docker's classic builder: no group means the group of the same name (or number)
    gid = find(group or user, "group")[0]
    return uid, max(gid, 0)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()

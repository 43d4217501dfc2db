"""The builder: runs a parsed Dockerfile step by step like Docker's classic builder, with a
layer cache (parent + expanded instruction + source hashes) and the same history records."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import time
from collections.abc import Callable
from pathlib import Path

from pallet.build import dispatch
from pallet.build.args import BuildArgs
from pallet.build.cache import ParseCache, StepCache
from pallet.build.lex import LexError, expand_word
from pallet.build.parser import BuildError, Dockerfile, Instruction, ParseError, Stage, parse
from pallet.errors import ImageNotFound
from pallet.oci import mediatypes as mt
from pallet.oci.image import DEFAULT_PATH, ContainerConfig, History, ImageConfig
from pallet.oci.manifest import Descriptor, Manifest
from pallet.oci.record import field, record, replace

TYPE_CHECKING = False  # typing is not imported at run time (a build's start-up)
if TYPE_CHECKING:
    from typing import TextIO

    # what only a step that misses the cache needs is imported there (a cached rebuild
    # never loads the RUN, layer-writing or context-archive machinery)
    from pallet.build.context import Context
    from pallet.build.copy import HashCache, Plan
    from pallet.build.run import Executor
    from pallet.store import Image, Store


@record(frozen=True)
class BuildOptions:
    tags: tuple[str, ...] = ()
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "default"
    no_cache: bool = False
    pull: bool = False
    cache_from: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)  # id -> host file
    platform: str = ""
    quiet: bool = False
    host_proxy_env: tuple[str, ...] = ()  # KEY=value given to RUN, as Docker's proxy build args


class _State:
    """Where a stage's build is: its config and layers so far, the last step's cache key."""

    __slots__ = ("args", "cmd_set", "config", "image_id", "key", "layers", "stage")

    def __init__(self, stage: Stage, config: ImageConfig, layers: list[Descriptor], key: str, image_id: str,
                 args: BuildArgs, cmd_set: bool = False) -> None:
        self.stage = stage
        self.config = config
        self.layers = layers
        self.key = key
        self.image_id = image_id
        self.args = args
        self.cmd_set = cmd_set

    @property
    def cc(self) -> ContainerConfig:
        return self.config.config


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _sha(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


class Builder:
    current_df: Dockerfile | None = None

    def __init__(
        self,
        store: Store,
        work_dir: Path,
        executor: Executor | None,
        out: TextIO,
        resolve_image: Callable[[str], Image] | None = None,
        host_platform: str = "linux/amd64",
    ) -> None:
        self.store = store
        self.work = work_dir
        self.executor = executor
        self.out = out
        self.resolve_image = resolve_image or store.images.lookup
        self.host_platform = host_platform
        self.cache = StepCache(work_dir, store.blobs)
        self._hashes: HashCache | None = None
        self._context_root: Path | None = None
        self.step = 0
        self.total = 0
        self.tail: list[str] = []

    # -- output ----------------------------------------------------------------------------

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    @property
    def hashes(self) -> HashCache:
        """Content digests of the context's files, read on the first COPY or ADD.

        One file per context directory (``hashes/``), so a build reads only its own.
        """
        if self._hashes is None:
            from pallet.build.copy import HashCache

            root = self._context_root
            path = None
            if root is not None:
                path = self.work / "hashes" / (hashlib.sha256(str(root).encode()).hexdigest()[:32] + ".json")
            self._hashes = HashCache(path, scope=root)
        return self._hashes

    # -- entry point -----------------------------------------------------------------------

    def build(self, ctx: Context, opts: BuildOptions) -> Image:
        text, df_name = ctx.dockerfile_text, ctx.dockerfile_name
        self._context_root = None if ctx.extracted else ctx.root  # digests of a temporary copy are not kept
        df = parse(text, df_name, ParseCache(self.work).records(text, df_name))
        self.current_df = df
        self._no_cache = opts.no_cache
        self.cache.sources = []
        for name in opts.cache_from:
            try:
                self.cache.sources.append(self.store.images.lookup(name))
            except ImageNotFound:
                self.say(f"[Warning] cache source {name} is not in the image store; ignored")
        if opts.platform and opts.platform not in (self.host_platform, self.host_platform.split("/")[0]):
            raise BuildError(f"pallet builds for the host's platform only ({self.host_platform}); "
                             f"requested: {opts.platform}")
        last = len(df.stages) - 1
        if opts.target:
            t = df.stage_index(opts.target)
            if t is None:
                raise BuildError(f"failed to reach build target {opts.target} in Dockerfile")
            last = t
        stages = list(df.stages[: last + 1])
        if opts.labels:
            # Docker's classic builder appends one LABEL instruction per --label to the built stage
            extra = tuple(
                Instruction("LABEL", (_go_q(k), "'" + v + "'"), original=f"LABEL {_go_q(k)}='{v}'")
                for k, v in sorted(opts.labels.items())
            )
            s = stages[-1]
            stages[-1] = replace(s, instructions=(*s.instructions, *extra))
        self.total = len(df.meta_args) + sum(1 + len(s.instructions) for s in stages)
        args = BuildArgs(dict(opts.build_args))
        self.step = 0
        for m in df.meta_args:
            self._step_header(m)
            for name, default in self._arg_pairs(m, args.meta_env(), df.escape):
                args.add_meta(name, default)
        done: list[_State] = []
        try:
            for s in stages:
                done.append(self._build_stage(df, s, done, args.for_stage(), ctx, opts))
        finally:
            if self._hashes is not None:
                self._hashes.save()
            self.cache.save()
        final = done[-1]
        unused = args.unused()
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        img = self._commit_image(final, opts.tags)
        return img

    def _step_header(self, ins: Instruction) -> None:
        self.step += 1
        text = ins.original.split("\n", 1)[0] if ins.original else ins.cmd
        self.say(f"Step {self.step}/{self.total} : {text}")

    # -- stages ----------------------------------------------------------------------------

    def _from(self, df: Dockerfile, s: Stage, done: list[_State], args: BuildArgs, opts: BuildOptions) -> _State:
        try:
            base = expand_word(s.base, args.meta_env(), df.escape)
        except LexError as e:
            raise ParseError(df.filename, s.line, str(e)) from None
        if s.platform:
            plat = expand_word(s.platform, args.meta_env(), df.escape)
            if plat not in (self.host_platform, "$BUILDPLATFORM", "$TARGETPLATFORM", ""):
                raise ParseError(df.filename, s.line, f"pallet builds for the host's platform only "
                                 f"({self.host_platform}); FROM asks for {plat}")
        prev = None
        low = base.lower()
        for st in done:
            if st.stage.name and st.stage.name == low:
                prev = st
        if prev is None and base.isdigit() and int(base) < len(done):
            prev = done[int(base)]
        if prev is not None:
            return _State(s, prev.config, list(prev.layers), prev.key, prev.image_id, args)
        if base == "scratch":
            arch = self.host_platform.split("/")[1]
            cfg = ImageConfig(architecture=arch, os="linux", config=ContainerConfig())
            return _State(s, cfg, [], "scratch", "", args)
        if df.stage_index(base) is not None and df.stage_index(base) == s.index:
            raise ParseError(df.filename, s.line, f"circular dependency detected on stage: {base}")
        try:
            img = self.resolve_image(base)
        except ImageNotFound as e:
            raise ParseError(df.filename, s.line,
                             f"pull access denied for {base}, repository does not exist or may require "
                             f"'docker login': {e}") from None
        return _State(s, img.config, list(img.manifest.layers), "image:" + img.id, img.id, args)

    def _build_stage(self, df: Dockerfile, s: Stage, done: list[_State], args: BuildArgs,
                     ctx: Context, opts: BuildOptions) -> _State:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {_first_line(s, df)}")
        st = self._from(df, s, done, args, opts)
        # the stage's working config: PATH set, OnBuild of the base consumed
        cc = st.cc
        if "PATH" not in cc.env_dict():
            cc = replace(cc, env=(*cc.env, DEFAULT_PATH))
        triggers = list(cc.on_build)
        cc = replace(cc, on_build=())
        st.config = replace(st.config, config=cc)
        self.say(f" ---> {_short(st.image_id)}" if st.image_id else " ---> ")
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for t in triggers:
                tdf = parse("FROM scratch\n" + t, df.filename)
                for ins in tdf.stages[0].instructions:
                    st = self._dispatch(df, st, ins, done, ctx, opts, trigger=True)
        for ins in s.instructions:
            self._step_header(ins)
            try:
                st = self._dispatch(df, st, ins, done, ctx, opts)
            except ParseError:
                raise
            except LexError as e:
                raise ParseError(df.filename, ins.line, str(e)) from None
            except BuildError as e:
                if ins.line and not str(e).startswith(df.filename):
                    err = ParseError(df.filename, ins.line, str(e))
                    err.exit_code = e.exit_code
                    err.tail = getattr(e, "tail", [])  # type: ignore[attr-defined]
                    raise err from None
                raise
        return st

    # -- steps -----------------------------------------------------------------------------

    def _env(self, st: _State) -> dict[str, str]:
        env = dict(st.cc.env_dict())
        for kv in st.args.filter_allowed(st.cc.env):
            k, _, v = kv.partition("=")
            env[k] = v
        return env

    def _arg_pairs(self, ins: Instruction, env: dict[str, str], escape: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for a in ins.args:
            k, eq, v = a.partition("=")
            if not k:
                raise BuildError("ARG names can not be blank")
            out.append((k, expand_word(v, env, escape) if eq else None))
        return out

    def _dispatch(self, df: Dockerfile, st: _State, ins: Instruction, done: list[_State], ctx: Context,
                  opts: BuildOptions, trigger: bool = False) -> _State:
        c = ins.cmd
        env = self._env(st)
        if c == "ARG":
            pairs = self._arg_pairs(ins, env, df.escape)
            for k, v in pairs:
                st.args.add(k, v)
            comment = "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in pairs)
            return self._meta_commit(st, st.cc, comment)
        if c == "WORKDIR":
            wd = dispatch.normalize_workdir(st.cc.working_dir, expand_word(ins.args[0], env, df.escape))
            cc = replace(st.cc, working_dir=wd)
            return self._workdir(st, cc, wd)
        if c == "MAINTAINER":
            new, comment, _ = dispatch.apply(ins, st.cc, env, df.escape, st.cmd_set)
            st.config = replace(st.config, author=" ".join(ins.args))
            return self._meta_commit(st, new, comment)
        if c in ("COPY", "ADD"):
            return self._copy(df, st, ins, env, done, ctx)
        if c == "RUN":
            return self._run(df, st, ins, env, done, ctx, opts)
        new, comment, cmd_set = dispatch.apply(ins, st.cc, env, df.escape, st.cmd_set)
        st.cmd_set = cmd_set
        return self._meta_commit(st, new, comment)

    def _created_by(self, st: _State, comment: str, one_arg: bool = False,
                    cc: ContainerConfig | None = None) -> str:
        shell = " ".join(dispatch.shell_of(cc or st.cc))
        return f"{shell} #(nop) {comment}" if one_arg else f"{shell} #(nop)  {comment}"

    def _advance(self, st: _State, cc: ContainerConfig, created_by: str, key: str,
                 layer: Callable[[], Descriptor | None] | None, container: bool = False) -> _State:
        """One step: from the cache, or by making its layer (if any) and recording history."""
        hit = None if self._no_cache else self.cache.get(key)
        if hit is None and not self._no_cache and self.cache.sources:
            found = self.cache.from_sources(st.config, st.layers, cc, created_by)
            if found is not None:
                cfg, layers = found
                cfg_digest = self.store.blobs.put(cfg.to_json())
                self.cache.put(key, cfg_digest, layers)
                hit = (cfg, layers, cfg_digest)
        if hit is not None:
            cfg, layers, cfg_digest = hit
            self.say(" ---> Using cache")
        else:
            cid = os.urandom(6).hex()
            if layer is None or container:
                self.say(f" ---> Running in {cid}")
            desc = layer() if layer is not None else None
            if layer is None or container:
                self.say(f"Removing intermediate container {cid}")
            layers = list(st.layers)
            diff_ids = list(st.config.diff_ids)
            empty = desc is None
            if desc is not None:
                layers.append(desc)
                diff_ids.append(desc.digest)
            created = now_rfc3339()
            hist = History(created=created, created_by=created_by, empty_layer=empty)
            cfg = replace(st.config, config=cc, created=created, diff_ids=tuple(diff_ids),
                          history=(*st.config.history, hist))
            data = cfg.to_json()
            cfg_digest = self.store.blobs.put(data)
            self.cache.put(key, cfg_digest, layers)
        self.say(f" ---> {_short(cfg_digest)}")
        return _State(st.stage, cfg, layers, key, cfg_digest, st.args, st.cmd_set)

    _no_cache = False

    def _meta_commit(self, st: _State, cc: ContainerConfig, comment: str) -> _State:
        created_by = self._created_by(st, comment, cc=cc)
        key = _sha(st.key, created_by, json.dumps(cc.to_dict(), sort_keys=True), st.config.author)
        return self._advance(st, cc, created_by, key, None)

    # WORKDIR makes the directory (a layer when it was missing), as Docker's classic builder does
    def _workdir(self, st: _State, cc: ContainerConfig, wd: str) -> _State:
        created_by = self._created_by(st, f"WORKDIR {wd}", one_arg=True)
        key = _sha(st.key, created_by, json.dumps(cc.to_dict(), sort_keys=True))
        rel = posixpath.normpath(wd).lstrip("/")

        def layer() -> Descriptor | None:
            # looked up only when the step is not cached (the lookup may unpack the parent);
            # the directory is made where the path leads in the image (through its links)
            if rel in ("", "."):
                return None
            from pallet.build import stagefs

            real, found = stagefs.resolver(self.store, st)(rel)
            if found is not None or not real:
                return None
            from pallet.build.copy import Item, Plan, _add_parents

            p = Plan()
            p.add(Item(real, "dir", 0o755, time.time()))
            _add_parents(p, self._image_lookup(st), 0, 0)
            return self._write_plan(p)

        return self._advance(st, cc, created_by, key, layer, container=True)

    # -- filesystem of a state (pallet.build.stagefs) ----------------------------------------

    def _lowers(self, st: _State) -> list[Path]:
        from pallet.build import stagefs

        return stagefs.lowers(self.store, st)

    def _image_lookup(self, st: _State) -> Callable[[str], os.stat_result | None]:
        from pallet.build import stagefs

        return stagefs.lookup(self.store, st)

    def _mounted(self, st: _State, writable: bool) -> contextlib.AbstractContextManager[tuple[Path, Path]]:
        from pallet.build import stagefs

        return stagefs.mounted(self.store, self.work, st, writable)

    def _write_plan(self, p: Plan) -> Descriptor:
        from pallet.build import stagefs

        return stagefs.write_plan(self.store, p)

    # -- COPY / ADD -------------------------------------------------------------------------

    def _copy(self, df: Dockerfile, st: _State, ins: Instruction, env: dict[str, str],
              done: list[_State], ctx: Context) -> _State:
        from pallet.build.copystep import copy_step

        return copy_step(self, df, st, ins, env, done, ctx)

    def _from_source(self, df: Dockerfile, st: _State, name: str, done: list[_State]) -> _State:
        """The state a ``--from`` names: an earlier stage, else an image."""
        low = name.lower()
        for d in done:
            if (d.stage.name and d.stage.name == low) or (name.isdigit() and d.stage.index == int(name)):
                return d
        idx = df.stage_index(name)
        if idx is not None or (name.isdigit() and int(name) < len(df.stages)):
            raise BuildError(f"circular dependency detected on stage: {name}")
        try:
            img = self.resolve_image(name)
        except ImageNotFound:
            raise BuildError(f"invalid from flag value {name}: No such image: {name}") from None
        return _State(st.stage, img.config, list(img.manifest.layers), "", img.id, st.args)

    # -- RUN ----------------------------------------------------------------------------------

    def _run(self, df: Dockerfile, st: _State, ins: Instruction, env: dict[str, str],
             done: list[_State], ctx: Context, opts: BuildOptions) -> _State:
        from pallet.build.runstep import run_step

        return run_step(self, df, st, ins, done, ctx, opts)

    # -- final image ----------------------------------------------------------------------------

    def _commit_image(self, st: _State, tags: tuple[str, ...]) -> Image:
        from pallet.oci.reference import parse as parse_ref

        refs = [parse_ref(t) for t in tags]
        cfg_bytes = self.store.blobs.read(st.image_id) if st.image_id else st.config.to_json()
        cfg_digest = self.store.blobs.put(cfg_bytes)
        m = Manifest(media_type=mt.OCI_MANIFEST, config=Descriptor(mt.OCI_CONFIG, cfg_digest, len(cfg_bytes)),
                     layers=tuple(st.layers))
        img = self.store.images.add(m.to_json(), mt.OCI_MANIFEST, refs)
        return img


def _go_q(s: str) -> str:
    return dispatch.go_quote(s)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _first_line(s: Stage, df: Dockerfile) -> str:
    return f"FROM {s.base}" + (f" AS {s.name}" if s.name else "")


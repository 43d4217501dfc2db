"""``pallet image bootstrap``: Debian-based base images from Debian's packages, with mmdebstrap.

mmdebstrap writes the root filesystem as a tar stream on its stdout; that
stream goes straight into the store as the image's one layer (validated and
hashed on the way, no temporary tarball).  Images are kept small the way
Docker's ``-slim`` images are: the ``minbase`` variant, merged ``/usr`` set up
by a hook rather than the ``usrmerge`` package (which pulls in perl), no
documentation, manual pages or translations, no apt lists or caches.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from pallet.config import Config
from pallet.errors import InvalidArgument, Unavailable
from pallet.oci.image import DEFAULT_PATH, ContainerConfig, History, ImageConfig
from pallet.oci.reference import parse
from pallet.store import Image

SUITES = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}
KNOWN = {"buster", "bullseye", "bookworm", "trixie", "sid", "unstable", "testing", "stable", "oldstable"}
DEFAULT_SUITE = "bookworm"
MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/merged-usr"

SLIM_DPKG = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/groff/*",
)
CLEANUP_HOOK = (
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb '
    '"$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/cache/ldconfig/aux-cache'
)


@dataclass(frozen=True)
class BootstrapOptions:
    tag: str
    suite: str = ""
    variant: str = "minbase"
    include: tuple[str, ...] = ()
    mirror: str = ""
    components: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


def suite_for(tag: str, suite: str = "") -> str:
    """The Debian suite: given, or read from a tag like ``debian:bookworm-slim`` / ``debian:12``."""
    if suite:
        return suite
    ref = parse(tag)
    for word in ref.tag.replace("_", "-").split("-"):
        if word in KNOWN:
            return word
        if word.split(".")[0] in SUITES:
            return SUITES[word.split(".")[0]]
    return DEFAULT_SUITE


def mmdebstrap_argv(opts: BootstrapOptions, suite: str) -> list[str]:
    """The mmdebstrap command line (pure; unit-tested)."""
    if opts.variant not in ("extract", "custom", "essential", "apt", "required", "minbase",
                            "buildd", "important", "debootstrap", "standard"):
        raise InvalidArgument(f"invalid variant: {opts.variant}")
    argv = ["mmdebstrap", "--mode=root", f"--variant={opts.variant}", "--format=tar"]
    argv += [f"--dpkgopt={o}" for o in SLIM_DPKG]
    argv += ['--aptopt=Acquire::Languages "none"', '--aptopt=APT::Install-Recommends "false"']
    if suite in ("bookworm", "trixie", "sid", "unstable", "testing", "stable"):
        argv.append(f"--hook-dir={MERGED_USR_HOOK}")
    if opts.include:
        argv.append("--include=" + ",".join(opts.include))
    if opts.components:
        argv.append("--components=" + ",".join(opts.components))
    argv.append(f"--customize-hook={CLEANUP_HOOK}")
    if _has_python(opts):
        # like the official python images: pip installs into the image's Python without
        # Debian's externally-managed marker (PEP 668) getting in the way of `RUN pip install`
        argv.append('--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED')
    argv += [suite, "-"]
    if opts.mirror:
        argv.append(opts.mirror)
    return argv


def _has_python(opts: BootstrapOptions) -> bool:
    return any(p.startswith("python3") for p in opts.include)


def image_config(opts: BootstrapOptions, suite: str) -> ContainerConfig:
    if opts.cmd:
        cmd = opts.cmd
    elif _has_python(opts):
        cmd = ("python3",)
    else:
        cmd = ("bash",)
    env = [DEFAULT_PATH]
    if cmd == ("python3",):
        env.append("LANG=C.UTF-8")
    return ContainerConfig(env=tuple(env), cmd=cmd)


def bootstrap(config: Config, opts: BootstrapOptions, progress: bool = True) -> Image:
    from pallet.engine.images import ImageService, host_arch, now_rfc3339
    from pallet.store.importer import import_layer

    ref = parse(opts.tag)
    if shutil.which("mmdebstrap") is None:
        raise Unavailable("mmdebstrap is not installed (apt-get install mmdebstrap)")
    suite = suite_for(opts.tag, opts.suite)
    argv = mmdebstrap_argv(opts, suite)
    svc = ImageService(config)
    with tempfile.TemporaryFile() as log, svc.gc_lock():
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            layer = import_layer(proc.stdout, svc.store.blobs, compression="")  # type: ignore[arg-type]
        except BaseException:
            # mmdebstrap failing ends its tar early: then its own error is the one to show
            proc.stdout.close()  # if it is still writing, it stops on a broken pipe
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                rc = 0
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if rc not in (0, None) and not _killed_by_pipe(log):
                raise _failure(log, rc) from None
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0:
            svc.store.blobs.delete(layer.digest)
            raise _failure(log, proc.returncode)
        created = now_rfc3339()
        cfg = ImageConfig(
            architecture=host_arch(),
            os="linux",
            created=created,
            config=image_config(opts, suite),
            diff_ids=(layer.diff_id,),
            history=(
                History(
                    created=created,
                    created_by=f"mmdebstrap --variant={opts.variant}"
                    + (f" --include={','.join(opts.include)}" if opts.include else "")
                    + f" {suite}",
                    comment="pallet image bootstrap",
                ),
            ),
        )
        return svc.add_image(cfg, [layer.descriptor()], ref)


def _failure(log: object, rc: int | None) -> Unavailable:
    log.seek(0)  # type: ignore[attr-defined]
    lines = log.read().decode(errors="replace").strip().splitlines()  # type: ignore[attr-defined]
    errs = [ln for ln in lines if ln.startswith("E:")]
    why = errs[0] if errs else (lines or [f"exit status {rc}"])[-1]
    return Unavailable(f"mmdebstrap failed: {why}")


def _killed_by_pipe(log: object) -> bool:
    """mmdebstrap stopped only because we stopped reading (we refused its output)."""
    log.seek(0)  # type: ignore[attr-defined]
    text = log.read().decode(errors="replace")  # type: ignore[attr-defined]
    return "received signal PIPE" in text and "E: " not in text.replace("E: mmdebstrap failed to run", "")

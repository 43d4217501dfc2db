"""The options of ``build`` as one table, and a click-free parser for the common build line.

``pallet.cli.build`` turns the table into the click command (help and every error
message stay click's); :func:`parse_build_line` reads ``pallet [GLOBAL] [image] build
[OPTIONS] PATH`` from argv as click would, without importing click (a fifth of a
fully cached rebuild).  Unlike ``run``, options may follow PATH (click's interspersed
arguments).  On anything it is not sure of it returns ``None`` and click parses the
same argv.
"""

from __future__ import annotations

from pallet.cli.run_options import (
    FLAG,
    MULTIPLE,
    SWITCH,
    VALUE,
    FastCall,
    Opt,
    read_command_line,
)

TYPE_CHECKING = False  # no typing at run time: this module is on the path of every build
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PROGRESS_CHOICES = ("auto", "plain", "tty", "quiet", "rawjson")


def _o(*names: str, dest: str, kind: str = VALUE, help: str, default: Any = None) -> Opt:
    return Opt(names=names, dest=dest, kind=kind, help=help, default=default)


BUILD_OPTIONS: tuple[Opt, ...] = (
    _o("-t", "--tag", dest="tags", kind=MULTIPLE, help="Name and optionally a tag (name:tag)."),
    _o("-f", "--file", dest="file", help="Name of the Dockerfile (default: PATH/Dockerfile)."),
    _o("--build-arg", dest="build_args", kind=MULTIPLE, help="Set build-time variables."),
    _o("--target", dest="target", default="", help="Set the target build stage to build."),
    _o("--label", dest="labels", kind=MULTIPLE, help="Set metadata for an image."),
    _o("--network", dest="network", default="default", help="Networking mode for the RUN instructions."),
    _o("-q", "--quiet", dest="quiet", kind=FLAG, help="Suppress the build output and print image ID on success."),
    _o("--iidfile", dest="iidfile", help="Write the image ID to the file."),
    # one of PROGRESS_CHOICES (click checks it; the fast parser leaves any other value to click)
    _o("--progress", dest="progress", default="auto", help="Type of progress output."),
    _o("--secret", dest="secrets", kind=MULTIPLE, help="Secret to expose to the build (id=mysecret,src=/path)."),
    _o("--no-cache", dest="no_cache", kind=FLAG, help="Do not use cache when building the image."),
    _o("--pull", dest="pull", kind=FLAG, help="Always attempt to pull a newer version of the image."),
    _o("--cache-from", dest="cache_from", kind=MULTIPLE, help="Images to consider as cache sources."),
    _o("--platform", dest="platform", default="", help="Set platform if server is multi-platform capable."),
    Opt(names=("--rm",), off=("--no-rm",), dest="rm", kind=SWITCH, default=True,
        help="Remove intermediate containers after a successful build."),
    _o("--force-rm", dest="force_rm", kind=FLAG, help="Always remove intermediate containers."),
)


def parse_build_line(args: list[str], environ: Mapping[str, str] | None = None) -> FastCall | None:
    """``args`` (argv without the program name) as a build :class:`FastCall`, or None for click."""
    read = read_command_line(args, environ, "image", {"build": (BUILD_OPTIONS, True)})
    if read is None:
        return None
    call, positional = read
    if len(positional) != 1 or call.params["progress"] not in PROGRESS_CHOICES:
        return None  # click's message for a missing or extra PATH or a bad --progress
    call.params["context"] = positional[0]
    return call

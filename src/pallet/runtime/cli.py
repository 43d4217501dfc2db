"""``pallet-runtime``: pallet's runtime with runc's command line.

Verbs and flags follow runc's, so a monitor or engine written for runc drives
it unchanged: ``--root``, ``--log``, ``--log-format``; ``create``, ``start``,
``run``, ``state``, ``kill``, ``delete``, ``pause``, ``resume``, ``exec``,
``list``, ``spec``.  Errors go to stderr (and, as runc does, as JSON lines to
``--log``), exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_ROOT = "/run/pallet-runtime"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pallet-runtime", description="pallet's OCI runtime (runc's verbs)")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory")
    p.add_argument("--log", default="", help="file for error records")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted for compatibility")
    sub = p.add_subparsers(dest="verb", required=True)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help)

    for name in ("create", "run"):
        c = verb(name, f"{name} a container")
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file", default="")
        c.add_argument("--console-socket", default="")
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        c.add_argument("--preserve-fds", type=int, default=0)
        if name == "run":
            c.add_argument("--detach", "-d", action="store_true")
        c.add_argument("id")
    verb("start", "start a created container").add_argument("id")
    verb("state", "print a container's state").add_argument("id")
    k = verb("kill", "send a signal to a container's init")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = verb("delete", "delete a container")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    verb("pause", "freeze a container").add_argument("id")
    verb("resume", "thaw a container").add_argument("id")
    e = verb("exec", "run a process in a container")
    e.add_argument("--process", "-p", default="")
    e.add_argument("--pid-file", default="")
    e.add_argument("--console-socket", default="")
    e.add_argument("--detach", "-d", action="store_true")
    e.add_argument("--tty", "-t", action="store_true")
    e.add_argument("--cwd", default="")
    e.add_argument("--env", "-e", action="append", default=[])
    e.add_argument("--user", "-u", default="")
    e.add_argument("id")
    e.add_argument("command", nargs=argparse.REMAINDER)
    ls = verb("list", "list containers")
    ls.add_argument("--quiet", "-q", action="store_true")
    ls.add_argument("--format", "-f", default="table")
    sp = verb("spec", "print a default config.json")
    sp.add_argument("--bundle", "-b", default="")
    return p


def _log_error(args: argparse.Namespace, msg: str) -> None:
    sys.stderr.write(msg + "\n")
    if args.log:
        rec = {"level": "error", "msg": msg, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            with open(args.log, "a") as f:
                f.write((json.dumps(rec) if args.log_format == "json" else msg) + "\n")
        except OSError:
            pass


def _exec_process(args: argparse.Namespace, rt: object) -> dict[str, object]:
    if args.process:
        with open(args.process) as f:
            return dict(json.load(f))
    if not args.command:
        raise SystemExit("exec: a command or --process is required")
    st = rt.state(args.id)  # type: ignore[attr-defined]
    with open(Path(st["bundle"]) / "config.json") as f:
        base = dict(json.load(f).get("process") or {})
    base["args"] = list(args.command)
    base["terminal"] = bool(args.tty)
    if args.cwd:
        base["cwd"] = args.cwd
    if args.env:
        base["env"] = list(base.get("env") or []) + list(args.env)
    if args.user:
        uid, _, gid = args.user.partition(":")
        base["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    return base


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from pallet.errors import PalletError
    from pallet.runtime.pallet_runtime import PalletRuntime

    rt = PalletRuntime(Path(args.root))
    try:
        rc = _dispatch(args, rt)
    except PalletError as e:
        _log_error(args, str(e))
        sys.exit(1)
    except OSError as e:
        _log_error(args, f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
        sys.exit(1)
    if argv is None:
        from pallet.linux.fastexit import exit_now

        exit_now(rc)
    sys.exit(rc)


def _dispatch(args: argparse.Namespace, rt: object) -> int:
    from pallet.linux.syscalls import set_child_subreaper

    r = rt  # type: ignore[assignment]
    v = args.verb
    if v == "create":
        r.create(args.id, args.bundle, stdin=0, stdout=1, stderr=2,  # type: ignore[attr-defined]
                 console_socket=args.console_socket or None, pid_file=args.pid_file or None)
        return 0
    if v == "run":
        if not args.detach:
            set_child_subreaper()
        pid = r.create(args.id, args.bundle, stdin=0, stdout=1, stderr=2,  # type: ignore[attr-defined]
                       console_socket=args.console_socket or None, pid_file=args.pid_file or None)
        r.start(args.id)  # type: ignore[attr-defined]
        if args.detach:
            return 0
        import signal

        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                  signal.SIGUSR2):
            signal.signal(s, lambda signum, _f: os.kill(pid, signum))
        while True:
            try:
                got, status = os.waitpid(-1, 0)
            except ChildProcessError:
                status = 0
                break
            if got == pid:
                break
        r.delete(args.id, force=True)  # type: ignore[attr-defined]
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code
    if v == "start":
        r.start(args.id)  # type: ignore[attr-defined]
        return 0
    if v == "state":
        print(json.dumps(r.state(args.id), indent=2))  # type: ignore[attr-defined]
        return 0
    if v == "kill":
        r.kill(args.id, args.signal, all=args.all)  # type: ignore[attr-defined]
        return 0
    if v == "delete":
        from pallet.errors import ContainerNotFound

        try:
            r.delete(args.id, force=args.force)  # type: ignore[attr-defined]
        except ContainerNotFound:
            if not args.force:
                raise
        return 0
    if v == "pause":
        r.pause(args.id)  # type: ignore[attr-defined]
        return 0
    if v == "resume":
        r.resume(args.id)  # type: ignore[attr-defined]
        return 0
    if v == "exec":
        process = _exec_process(args, r)
        if not args.detach:
            set_child_subreaper()
        pid = r.exec(args.id, process, stdin=0, stdout=1, stderr=2,  # type: ignore[attr-defined]
                     console_socket=args.console_socket or None, detach=args.detach)
        if args.pid_file:
            Path(args.pid_file).write_text(str(pid))
        if args.detach:
            return 0
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code
    if v == "list":
        states = r.list()  # type: ignore[attr-defined]
        if args.format == "json":
            print(json.dumps(states))
        elif args.quiet:
            for s in states:
                print(s["id"])
        else:
            print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} BUNDLE")
            for s in states:
                print(f"{s['id']:<20} {s['pid']:<8} {s['status']:<10} {s['bundle']}")
        return 0
    if v == "spec":
        from pallet.oci.spec import default_spec

        text = json.dumps(default_spec(["sh"], env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"], terminal=True), indent=2)
        if args.bundle:
            Path(args.bundle, "config.json").write_text(text + "\n")
        else:
            print(text)
        return 0
    raise SystemExit(f"unknown verb {v}")


if __name__ == "__main__":
    main()

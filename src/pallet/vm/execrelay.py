"""One ``exec`` session of a VM container, as a local process: ``python -m pallet.vm.execrelay``.

Arguments: the container's control socket, the process (JSON) and, for a tty,
a console socket.  Its stdio (or, with a tty, a host pty whose master goes to
the console socket, as with runc) is handed to the VM's shim, which relays it to
the process in the guest.  Signals it receives go to that process; it exits with
the process's exit status.  So a caller treats it like the process ``runc exec -d``
leaves behind: wait for it, signal it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import termios
import tty

from pallet.vm.unixsock import connect_unix

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH)


def _request(ctl: str, req: dict[str, object]) -> None:
    with connect_unix(ctl, 10) as s:
        s.sendall(json.dumps(req).encode())
        s.makefile("rb").readline()


def main() -> None:
    ctl, process = sys.argv[1], json.loads(sys.argv[2])
    console = sys.argv[3] if len(sys.argv) > 3 else ""
    fds = [0, 1, 2]
    ctty = -1
    if process.get("terminal") and console:
        master, slave = os.openpty()
        ctty = os.open(os.ttyname(slave), os.O_RDWR)  # we lead our own session: our ctty
        os.close(slave)
        tty.setraw(ctty)
        with connect_unix(console, 10) as c:
            socket.send_fds(c, [b"pallet-vm-exec"], [master])
        os.close(master)
        fds = [ctty, ctty, ctty]
    try:
        s = connect_unix(ctl)
        socket.send_fds(s, [json.dumps({"op": "exec", "process": process}).encode()], fds)
    except OSError as e:
        sys.stderr.write(f"Error: the VM is not running: {e.strerror or e}\n")
        sys.exit(126)
    f = s.makefile("rb")
    first = json.loads(f.readline() or b'{"error": "the VM stopped"}')
    if "error" in first:
        sys.stderr.write(f"Error: {first['error']}\n")
        sys.exit(126)
    session = int(first.get("id", 0))

    def size() -> None:
        if ctty < 0:
            return
        with contextlib.suppress(OSError):
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(ctty, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            if rows and cols:
                _request(ctl, {"op": "resize", "session": session, "rows": rows, "cols": cols})

    def forward(sig: int, _frame: object) -> None:
        if sig == signal.SIGWINCH:
            size()
            return
        with contextlib.suppress(OSError, ValueError):
            _request(ctl, {"op": "signal", "session": session, "signal": sig})

    for sig in FORWARDED:
        signal.signal(sig, forward)
    size()
    line = b""
    while not line:
        try:
            line = f.readline() or b'{"exit": 137}'
        except InterruptedError:
            continue
    sys.exit(int(json.loads(line).get("exit", 137)))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""pty-run.py TRANSCRIPT COMMAND [ARG...]

Runs COMMAND on a pseudo-terminal of its own, as a person at a terminal would see it: its
stdin, stdout and stderr are the terminal, and it is the terminal's session leader. Every
read from the terminal goes to TRANSCRIPT as one JSON line, {"t": seconds since the start,
"data": text}, in order. A yes/no question ("(yes/no)?") is answered "yes" once. Exits with
the command's exit status (128 + N for signal N)."""
import json
import os
import pty
import select
import sys
import time

transcript, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

start = time.monotonic()
seen = b""
answered = False
with open(transcript, "w") as out:
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the command closed the terminal's last descriptor
            data = b""
        if not data:
            break
        out.write(json.dumps({"t": time.monotonic() - start, "data": data.decode("utf-8", "replace")}) + "\n")
        out.flush()
        seen = (seen + data)[-4096:]
        if not answered and b"(yes/no)?" in seen:
            os.write(fd, b"yes\n")
            answered = True

_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))

"""The ``pre-receive`` hook of every app repository (a program, run by ``git receive-pack``).

Why a relay: the build and deploy need the controller (its database, runtime and
locks), but git runs hooks as child processes whose output it sends to the pusher as
``remote:`` lines. So the hook reads the ref updates from stdin, hands them, with where
git keeps the pushed objects (its quarantine), to the controller over the push's private
Unix socket (``MOORAGE_PUSH_SOCKET``, with the one-time ``MOORAGE_PUSH_TOKEN``), prints
each line of output as it arrives and exits non-zero when the controller rejects the push,
so git refuses to update the branch and shows why.

It imports only the standard library and runs with ``python -I``: it must start fast and
must not read Moorage's settings.
"""

from __future__ import annotations

import json
import os
import socket
import sys

#: Object locations git gives hooks; the controller reads the pushed commit through them.
OBJECT_VARIABLES = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> int:
    path, token = os.environ.get("MOORAGE_PUSH_SOCKET"), os.environ.get("MOORAGE_PUSH_TOKEN")
    if not path or not token:
        say("this repository takes pushes only through the Moorage controller (git push moorage main)")
        return 1
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    request = {
        "token": token,
        "updates": updates,
        "objects": {name: os.environ[name] for name in OBJECT_VARIABLES if name in os.environ},
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            with conn.makefile("rb") as answers:
                for raw in answers:
                    message = json.loads(raw)
                    if "log" in message:
                        say(str(message["log"]))
                    elif "error" in message:
                        say(f"!     {message['error']}")
                        return 1
                    elif message.get("done"):
                        return 0
    except (OSError, ValueError) as exc:
        say(f"!     lost the connection to the Moorage controller ({exc}); see `moorage releases`")
        return 1
    say("!     the controller closed the connection before the deploy finished; see `moorage releases`")
    return 1


if __name__ == "__main__":
    sys.exit(main())

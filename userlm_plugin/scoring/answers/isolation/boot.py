"""Bootstrap for the launcher and the worker: `python -I -c <this source> stdin` (the launcher: the bundle is
JSON on stdin) or `... <in_fd> <out_fd> [<uid> <gid>]` (a worker: the bundle is the first message on its pipe).
With a uid and gid (the `namespace` level, where bubblewrap starts the worker as root with only CAP_SETUID and
CAP_SETGID), the worker becomes that user before it reads anything, and stops if it cannot.

A bundle is {"modules": [[name, source], ...], "main": name, ...}: each module is executed as
`userlm_isolation.<name>` (so the modules import each other with relative imports, as in the package), then
`main` is called. Nothing is written to disk and nothing is imported from the package, so this works in any
sandbox with a python3 >= 3.8.
"""

import json
import os
import sys
import types

PACKAGE = "userlm_isolation"


def read_exact(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise SystemExit(3)
        data += chunk
    return data


def load(bundle):
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    sys.modules[PACKAGE] = package
    for name, source in bundle["modules"]:
        module = types.ModuleType(PACKAGE + "." + name)
        module.__package__ = PACKAGE
        sys.modules[module.__name__] = module
        setattr(package, name, module)
        exec(compile(source, f"<{PACKAGE}/{name}.py>", "exec", dont_inherit=True), module.__dict__)
    return sys.modules[PACKAGE + "." + bundle["main"]]


def become(uid, gid):
    """Drop root for good: no supplementary groups, every uid and gid the run's (capabilities go with root)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise SystemExit(4)


def boot():
    if sys.argv[1] == "stdin":
        bundle = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        load(bundle).main(bundle)
        return
    in_fd, out_fd = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        become(int(sys.argv[3]), int(sys.argv[4]))
    size = int.from_bytes(read_exact(in_fd, 8), "big")
    bundle = json.loads(read_exact(in_fd, size).decode("ascii"))
    load(bundle).main(in_fd, out_fd)


if __name__ == "__main__":
    boot()

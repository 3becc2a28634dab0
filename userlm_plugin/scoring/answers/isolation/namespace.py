"""TRUSTED: the `namespace` level: bubblewrap gives the worker namespaces of its own (docs/grading.md).

The worker's view of the machine is built from nothing: a read-only root that holds only the interpreter, the
dynamic loader and the shared libraries it loads, and the interpreter's standard library (any site-packages
or dist-packages directory inside it is masked by an empty mount); a private, size-limited tmpfs at /tmp that
/var/tmp, /dev/shm and /run/lock point into (one cap on everything the run can write); a few device nodes; a
/proc of its own PID namespace. It also gets its own IPC namespace (SysV and POSIX IPC die with the run), a
network namespace with only loopback, a UTS and (where the kernel allows) a cgroup namespace. bubblewrap's
process is init of the PID namespace, so killing it (or the launcher: `--die-with-parent`) kills everything the
candidate started.

A seccomp filter (`no_new_namespaces`) makes `unshare`/`clone` with CLONE_NEWUSER fail inside: an unprivileged
process that may create a user namespace gets every capability in it, can mount a tmpfs of any size there
(around the disk cap) and reaches much more of the kernel.

bubblewrap runs as root here, without a user namespace (in one, the sandbox's uids would map to root), and
keeps only CAP_SETUID/CAP_SETGID, which the worker's boot uses to become the run's leased uid before it reads
anything from the launcher (`boot.py`). Nothing of the host's disk is writable and nothing else is visible:
no /root, no virtualenv, no logs, no other run's temp files.
"""

from __future__ import annotations

import functools
import os
import struct
import subprocess
import sys

from . import confine

BWRAP_PATHS = ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap")
DEVICES = ("null", "zero", "full", "random", "urandom")
SCRATCH = "/tmp"
"""The run's one writable place (a tmpfs of `disk_mb`); the other temp directories are links into it."""
LINKED_TO_SCRATCH = ("/var/tmp", "/dev/shm", "/run/lock")
NAMESPACES = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try")
PT_INTERP = 3
MAX_LINKS = 40
SETUP_FAILED = "bwrap:"
"""How bubblewrap starts its own error messages (on stderr, before the worker runs any of our code)."""


class NamespaceUnavailable(Exception):
    """bubblewrap is missing or could not set the namespaces up (the message says which)."""


def find_bwrap():
    for path in BWRAP_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def bwrap_version(bwrap, cache_dir):
    """bubblewrap's version ("0.8.0"), from `bwrap --version`, remembered in the root-only `cache_dir` for as
    long as the binary is unchanged (a process start per run would be a tenth of the sandbox's cost)."""
    try:
        info = os.stat(bwrap)
    except OSError:
        return "?"
    stamp = f"{info.st_mtime_ns} {info.st_size} "
    cache = os.path.join(cache_dir, "bwrap-version")
    try:
        with open(cache) as f:
            known = f.read()
        if known.startswith(stamp):
            return known[len(stamp) :].strip()
    except OSError:
        pass
    try:
        out = subprocess.run([bwrap, "--version"], capture_output=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    version = out.decode("ascii", "replace").strip().split(" ")[-1] or "?"
    try:
        with open(cache + ".new", "w") as f:
            f.write(stamp + version)
        os.replace(cache + ".new", cache)
    except OSError:
        pass
    return version


def worker_interpreter():
    """The interpreter the worker runs at this level: the launcher's own, as a real file (a virtualenv's
    `python` is a link to its base interpreter, and the virtualenv itself is not in the sandbox)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


class Layout:
    """The read-only part of the sandbox's filesystem: each path appears where the host has it, every
    symlink on the way as a symlink, the real file or directory as a read-only bind."""

    def __init__(self):
        self.binds = set()
        self.links = {}
        self.masks = set()

    def expose(self, path, depth=0):
        path = os.path.normpath(os.path.abspath(path))
        if depth > MAX_LINKS or not os.path.lexists(path):
            return
        current = ""
        parts = path.strip("/").split("/")
        for index, part in enumerate(parts):
            current += "/" + part
            if os.path.islink(current):
                target = os.readlink(current)
                self.links.setdefault(current, target)
                resolved = os.path.join(os.path.dirname(current), target, *parts[index + 1 :])
                self.expose(resolved, depth + 1)
                return
        self.binds.add(path)

    def mask(self, path):
        """Hide a directory inside an exposed one (site-packages) behind an empty read-only mount."""
        if os.path.isdir(path) and not os.path.islink(path):
            self.masks.add(os.path.normpath(path))

    def arguments(self):
        """bubblewrap options, parents before children: directories (0755), binds, links, masks."""
        binds = sorted(p for p in self.binds if not _inside_any(p, self.binds - {p}))
        links = sorted(p for p in self.links if not _inside_any(p, binds))
        dirs = set()
        for path in [*binds, *links]:
            parent = os.path.dirname(path)
            while parent != "/" and not _inside_any(parent, binds) and parent not in binds:
                dirs.add(parent)
                parent = os.path.dirname(parent)
        args = []
        for directory in sorted(dirs):
            args += ["--perms", "0755", "--dir", directory]
        for path in binds:
            args += ["--ro-bind", path, path]
        for path in links:
            args += ["--symlink", self.links[path], path]
        for path in sorted(self.masks):
            if _inside_any(path, binds):
                args += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
        return args


def _inside_any(path, roots):
    return any(path != root and path.startswith(root.rstrip("/") + "/") for root in roots)


def elf_interpreter(path):
    """The dynamic loader an ELF executable names (PT_INTERP), or None (a static or non-ELF file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or len(head) < 64:
                return None
            wide, order = head[4] == 2, "<" if head[5] == 1 else ">"
            if wide:
                (phoff,) = struct.unpack_from(order + "Q", head, 0x20)
                size, count = struct.unpack_from(order + "HH", head, 0x36)
            else:
                (phoff,) = struct.unpack_from(order + "I", head, 0x1C)
                size, count = struct.unpack_from(order + "HH", head, 0x2A)
            f.seek(phoff)
            table = f.read(size * count)
            for index in range(count):
                entry = index * size
                if struct.unpack_from(order + "I", table, entry)[0] != PT_INTERP:
                    continue
                fields = ("QQ", 8, 32) if wide else ("II", 4, 16)
                (offset,) = struct.unpack_from(order + fields[0][0], table, entry + fields[1])
                (length,) = struct.unpack_from(order + fields[0][1], table, entry + fields[2])
                f.seek(offset)
                return f.read(length).rstrip(b"\0").decode("utf-8", "replace")
    except (OSError, struct.error):
        return None
    return None


def library_dirs():
    """Directories of the shared libraries this interpreter has loaded (its libpython, libc, ...; the
    standard library's extension modules load theirs from the same system directory)."""
    mapped = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if path.startswith("/") and ".so" in os.path.basename(path):
                    mapped.add(path)
    except OSError:
        pass
    return {os.path.dirname(os.path.realpath(path)) for path in mapped}


def interpreter_layout(python):
    """What the worker's interpreter needs: itself, its loader, its libraries' directories and the standard
    library of this (the launcher's) interpreter, which runs with the same flags (-I -S)."""
    layout = Layout()
    layout.expose(python)
    loader = elf_interpreter(python)
    if loader:
        layout.expose(loader)
    for path in ["/etc/ld.so.cache", *sorted(library_dirs())]:
        layout.expose(path)
    stdlib = [p for p in sys.path if os.path.isabs(p) and os.path.exists(p)]
    for path in stdlib:
        layout.expose(path)
    version = "python{}.{}".format(*sys.version_info[:2])
    for root in {os.path.realpath(p) for p in layout.binds if os.path.isdir(p)}:
        for sub in ("site-packages", "dist-packages", "python3/dist-packages"):
            layout.mask(os.path.join(root, sub))
            layout.mask(os.path.join(root, version, sub))
    return layout


@functools.lru_cache(maxsize=None)  # noqa: UP033 - functools.cache is Python 3.9+; this runs on 3.8
def _layout_arguments(python):
    return tuple(interpreter_layout(python).arguments())


def command(bwrap, python, disk_bytes, switch_capabilities, seccomp_fd=None):
    """The bubblewrap prefix for a worker command (`python` must be the interpreter `interpreter_layout`
    describes; `seccomp_fd`: a readable fd holding `no_new_namespaces()`, inherited by bubblewrap)."""
    args = [bwrap, *NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    if switch_capabilities:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += _layout_arguments(python)
    args += ["--proc", "/proc", "--perms", "0755", "--dir", "/dev"]
    for device in DEVICES:
        args += ["--dev-bind", "/dev/" + device, "/dev/" + device]
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        args += ["--symlink", target, "/dev/" + name]
    args += ["--symlink", "/proc/self/fd/1", "/dev/stdout", "--symlink", "/proc/self/fd/2", "/dev/stderr"]
    args += ["--perms", "1777", "--size", str(int(disk_bytes)), "--tmpfs", SCRATCH]
    for path in LINKED_TO_SCRATCH:
        parent = os.path.dirname(path)
        if parent != "/dev":
            args += ["--perms", "0755", "--dir", parent]
        args += ["--symlink", SCRATCH, path]
    args += ["--chdir", SCRATCH, "--remount-ro", "/", "--"]
    return args


# ---- seccomp: no user namespaces (and so no namespaces at all) inside the sandbox ------------------------

CLONE_NEWUSER = 0x10000000
SECCOMP_ALLOW = 0x7FFF0000
SECCOMP_EPERM = 0x00050000 | 1
SECCOMP_ENOSYS = 0x00050000 | 38
X32_BIT = 0x40000000
ARCHES = {  # machine: (AUDIT_ARCH_*, clone, unshare, clone3)
    "x86_64": (0xC000003E, 56, 272, 435),
    "aarch64": (0xC00000B7, 220, 97, 435),
}
"""Syscall numbers from the kernel's tables (arch/x86/entry/syscalls/syscall_64.tbl,
include/uapi/asm-generic/unistd.h)."""


def no_new_namespaces():
    """A classic-BPF seccomp program (bytes for `bwrap --seccomp FD`), or None for an architecture not in
    ARCHES. It refuses clone/unshare with CLONE_NEWUSER (EPERM) and clone3, whose flags it cannot read
    (ENOSYS, so the C library falls back to clone), and every system call of another ABI (x32, i386)."""
    known = ARCHES.get(os.uname().machine)
    if known is None:
        return None
    arch, clone, unshare, clone3 = known
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    program = [
        (ld, 0, 0, 4),  # 0: arch
        (jeq, 1, 0, arch),  # 1: native ABI: go on
        (ret, 0, 0, SECCOMP_EPERM),  # 2
        (ld, 0, 0, 0),  # 3: syscall number
        (jge, 6, 0, X32_BIT),  # 4: x32 -> 11
        (jeq, 3, 0, clone),  # 5: -> 9
        (jeq, 2, 0, unshare),  # 6: -> 9
        (jeq, 5, 0, clone3),  # 7: -> 13
        (ret, 0, 0, SECCOMP_ALLOW),  # 8
        (ld, 0, 0, 16),  # 9: flags (low half of the first argument)
        (jset, 0, 1, CLONE_NEWUSER),  # 10: -> 11 or 12
        (ret, 0, 0, SECCOMP_EPERM),  # 11
        (ret, 0, 0, SECCOMP_ALLOW),  # 12
        (ret, 0, 0, SECCOMP_ENOSYS),  # 13
    ]
    return b"".join(struct.pack("=HBBI", *op) for op in program)


END_WAIT_S = 10.0


def end(process, uid, cgroup=None):
    """Stop a sandboxed worker: kill the PID namespace's init (bubblewrap's child), so the kernel kills every
    process in the namespace, and wait until bubblewrap has collected it. Returns how many processes the
    candidate had running besides the worker itself (from the run's cgroup where there is one: cheaper than
    scanning /proc)."""
    inits = _children(process.pid)
    ours = {process.pid, *inits, *(w for i in inits for w in _children(i))}
    if cgroup is not None:
        left = len(set(cgroup.pids()) - ours)
    else:
        left = len(confine.uid_pids(uid) - ours)
    for pid in inits:
        confine.kill(pid)
    try:
        process.wait(timeout=END_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
    return left


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []

"""TRUSTED: how the launcher confines a worker and removes everything it started (see docs/grading.md).

The uid lease, rlimits, cgroup and sweeps below serve the `namespace` level too (`namespace.py` adds
bubblewrap's namespaces around a worker that runs as the leased uid). Without namespaces, two levels:
- "user" (the launcher is root): the worker runs as a uid of its own, leased for this run from a pool with
  a lock file per uid (concurrent runs never share a uid, so sweeping one run's uid cannot touch another
  run). As that user it cannot read other processes' /proc entries (the eval's environment), cannot signal
  or ptrace them, and RLIMIT_NPROC holds (it does nothing for root). Afterwards every process of that uid is
  killed (by a helper that becomes the uid and calls kill(-1), whatever the processes' environment, session
  or parent), plus the run's cgroup v2 where one can be made, plus every descendant of the launcher; then its
  files in the shared temp directories, its SysV IPC objects and POSIX message queues. A uid a dead launcher
  left dirty is swept by the next run, whatever uid that run leases (`sweep_abandoned`).
- "process" (not root, or no interpreter the unprivileged user can run): today's confinement. Same user as
  the launcher; own session, rlimits, empty environment, temp dir; the launcher is a child subreaper, so
  orphans (double forks, `setsid`, `exec` with an empty environment) are re-parented to it and swept.
Both: no-new-privileges (setuid binaries cannot raise privileges), parent-death signal, a non-dumpable
launcher (no ptrace or /proc/<launcher>/mem|fd|environ for same-user processes).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import resource
import shutil
import signal
import stat
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
LOCK_DIRS = ("/run/userlm-grading", os.path.join(tempfile.gettempdir(), "userlm-grading-locks"))
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
"""World-writable places a uid can leave files in (POSIX message queues are files of /dev/mqueue, where an
mqueue filesystem is mounted)."""
SYSV_IPC = (("shm", "shmctl"), ("msg", "msgctl"), ("sem", "semctl"))
IPC_RMID = 0


class ConfineError(Exception):
    """The requested isolation cannot be set up (named reason)."""


def _libc():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:  # noqa: BLE001 - no ctypes: the prctl hardening is skipped and says so
        return None


LIBC = _libc()


def prctl(option, value):
    return LIBC is not None and LIBC.prctl(option, value, 0, 0, 0) == 0


def harden_launcher():
    """Non-dumpable (same-user processes cannot ptrace it or open its /proc files) and a child subreaper
    (orphaned descendants come back to it, so it can find and kill them)."""
    return prctl(PR_SET_DUMPABLE, 0), prctl(PR_SET_CHILD_SUBREAPER, 1)


# ---- the uid pool ------------------------------------------------------------------------------------


def _lock_dir():
    for path in LOCK_DIRS:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            info = os.lstat(path)
        except OSError:
            continue
        private = stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077
        if private:  # anything else (a symlink, a directory a candidate made) is not trusted
            return path
    raise ConfineError("no private directory for the uid locks (tried " + ", ".join(LOCK_DIRS) + ")")


class UidLease:
    """One uid of the pool, held (flock) until `release()` or the launcher's death."""

    def __init__(self, base, count, wait_s):
        directory = _lock_dir()
        deadline = time.monotonic() + wait_s
        while True:
            for offset in range(count):  # lowest free first: reused uids are known clean
                uid = base + offset
                if _is_known_user(uid):
                    continue
                fd = os.open(os.path.join(directory, str(uid)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                self.uid = self.gid = uid
                self.directory = directory
                self._fd = fd
                self.dirty = os.read(fd, 16) != b"clean"  # a launcher died holding it: sweep before use
                self._mark(b"dirty")
                return
            if time.monotonic() > deadline:
                raise ConfineError(f"all {count} grading uids from {base} are in use")
            time.sleep(0.05)

    def private_dir(self):
        """A fresh root-only directory for this uid's run (the worker's output files): inside the lock
        directory, so a run that died is cleaned up by the next one on the uid, not left in /tmp."""
        path = os.path.join(self.directory, f"{self.uid}.run")
        shutil.rmtree(path, ignore_errors=True)
        os.mkdir(path, 0o700)
        return path

    def _mark(self, state):
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, state)

    def release(self, clean):
        """Give the uid back; `clean`: nothing of the run is left, the next run need not sweep first."""
        if clean:
            self._mark(b"clean")
        os.close(self._fd)


def sweep_abandoned(lease):
    """Sweep every uid of the lock directory that a dead launcher left dirty, whatever uid this run leased
    (a launcher killed mid-run cannot sweep; the next run does it). Returns how many were swept."""
    swept = 0
    for entry in os.listdir(lease.directory):
        if not entry.isdigit() or int(entry) == lease.uid:
            continue
        try:
            fd = os.open(os.path.join(lease.directory, entry), os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a live run is using it
            if os.read(fd, 16) == b"clean":
                continue
            uid = int(entry)
            group = Cgroup.existing(f"userlm-grading-{uid}")
            sweep(_Abandoned(uid), group)
            sweep(_Abandoned(uid), None)
            if group is not None:
                group.remove()
            remove_leftovers_of(uid)
            shutil.rmtree(os.path.join(lease.directory, f"{uid}.run"), ignore_errors=True)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, b"clean")
            swept += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return swept


class _Abandoned:
    """A uid a dead run left dirty (what `sweep` needs of a lease)."""

    def __init__(self, uid):
        self.uid = self.gid = uid


def _is_known_user(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


# ---- cgroup v2 ---------------------------------------------------------------------------------------


class Cgroup:
    """A cgroup v2 of the run's own under the launcher's cgroup, when the hierarchy is writable."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls, name):
        base = _own_cgroup2()
        if base is None:
            return None
        group = cls(os.path.join(base, name))
        if os.path.isdir(group.path):  # left by a launcher that died: empty it first
            group.kill()
            group.remove()
        try:
            os.mkdir(group.path)
        except OSError:
            return None
        return group

    @classmethod
    def existing(cls, name):
        """The group `name` left by a launcher that died (emptied and removed), or None."""
        base = _own_cgroup2()
        if base is None or not os.path.isdir(os.path.join(base, name)):
            return None
        group = cls(os.path.join(base, name))
        group.kill()
        return group

    @classmethod
    def remove_abandoned(cls):
        """Empty and remove the groups of `process`-level launchers that died (named after their pid)."""
        base = _own_cgroup2()
        try:
            entries = os.listdir(base) if base else []
        except OSError:
            return
        for entry in entries:
            pid = entry[len("userlm-grading-p") :]
            if entry.startswith("userlm-grading-p") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                cls(os.path.join(base, entry)).remove()

    def join(self):
        """In the worker's preexec: move the calling process into the group."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write("0")

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(line) for line in f if line.strip()]
        except OSError:
            return []

    def kill(self):
        try:
            with open(os.path.join(self.path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:  # kernels before 5.14: kill the members one by one
            for pid in self.pids():
                kill(pid)

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError as ex:
                if ex.errno == errno.ENOENT:
                    return
                self.kill()
                time.sleep(0.01)


def _own_cgroup2():
    try:
        with open("/proc/self/cgroup") as f:
            own = [line.strip()[3:] for line in f if line.startswith("0::")]
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return None
    points = [m[4] for m in mounts if "-" in m and m[m.index("-") + 1] == "cgroup2"]
    if not own or not points:
        return None
    base = os.path.join(points[0], own[0].lstrip("/"))
    return base if os.access(base, os.W_OK) else None


# ---- starting a worker -------------------------------------------------------------------------------


def preexec(limits, lease, cgroup, become=True):
    """What the forked worker does before exec: cgroup, rlimits, user, no new privileges, death signal.
    `become`: take the lease's uid here (False at the `namespace` level: bubblewrap must start as root, and
    the worker's boot takes the uid inside the sandbox)."""
    memory = int(limits["memory_mb"]) * 1024 * 1024
    cpu = int(limits["wall_s"]) + 1
    fsize = int(limits["file_size_mb"]) * 1024 * 1024
    if lease is not None:  # the uid is fresh (swept before use): the count starts at 0, plus the worker
        nproc = int(limits["max_processes"]) + 1
    else:
        nproc = _uid_process_count(os.getuid()) + int(limits["max_processes"])

    def setup():
        if cgroup is not None:
            cgroup.join()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if lease is not None and become:
            os.setgroups([])
            os.setresgid(lease.gid, lease.gid, lease.gid)
            os.setresuid(lease.uid, lease.uid, lease.uid)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.umask(0o077)

    return setup


def can_switch_users():
    """True when this process may change uids and gids (CAP_SETUID and CAP_SETGID; a container started with
    `--cap-drop` may lack them even as root)."""
    try:
        with open("/proc/self/status") as f:
            caps = int(next(line.split()[1] for line in f if line.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        return False
    return bool(caps & (1 << 6)) and bool(caps & (1 << 7))


def interpreter_for_others():
    """A python3 an unprivileged user can execute (every directory on the way searchable by others)."""
    candidates = [sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", None)]
    candidates += ["/usr/local/bin/python3", "/usr/bin/python3", "/bin/python3"]
    for path in candidates:
        if path and all(_others_can_reach(p) for p in (path, os.path.realpath(path))):
            return path
    return None


def others_can_run(python):
    """True when an unprivileged user can execute `python` and read its standard library (needed inside the
    sandbox, where the directories above them are recreated world-searchable)."""
    stdlib = os.path.dirname(os.__file__)
    try:
        return bool(os.stat(python).st_mode & stat.S_IXOTH) and os.stat(stdlib).st_mode & 0o005 == 0o005
    except OSError:
        return False


def _others_can_reach(path):
    path = os.path.abspath(path)
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


# ---- finding and killing what is left ------------------------------------------------------------------


def _status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except (OSError, ValueError):
        return {}


def uid_pids(uid):
    """Live processes whose real, effective or saved uid is `uid` (from /proc/<pid>/status, which a process
    cannot hide from root by making itself non-dumpable)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _status(entry)
            if fields.get("State", "").strip()[:1] not in ("", "Z", "X"):
                if uid in {int(u) for u in fields.get("Uid", "").split()[:3]}:
                    found.add(int(entry))
    return found


def _uid_process_count(uid):
    return len(uid_pids(uid))


def _descendants(root):
    """Live descendants of `root` (from /proc/<pid>/stat: state and parent)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = set(), list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _kill_all_of(uid):
    """Fork a helper that becomes `uid` and sends SIGKILL to every process that uid may signal, whatever their
    session, parent or environment (kill(-1) cannot say whether it found any: the caller scans /proc)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        raise ConfineError(f"could not act as uid {uid} to clean up")


def reap():
    """Collect exited children (the launcher is a subreaper: orphans end up as its children)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(lease, cgroup):
    """Kill every process the run started (the worker is already gone); returns how many were left.

    With a cgroup its membership is complete (a process cannot leave it without privileges); else, at the
    `user` level, every process of the run's uid; else every descendant of the launcher (the subreaper)."""
    reap()
    left = set()
    for attempt in range(200):
        if cgroup is not None:
            alive = set(cgroup.pids())
            if alive:
                cgroup.kill()
        elif lease is not None:
            alive = uid_pids(lease.uid)
            if alive:
                _kill_all_of(lease.uid)
        else:
            alive = _descendants(os.getpid())
            for pid in alive:
                kill(pid)
        if not alive:
            break
        left |= alive
        reap()
        time.sleep(min(0.001 * (attempt + 1), 0.02))
    reap()
    return len(left)


def remove_leftovers_of(uid):
    """Everything a uid can leave behind it outside its processes: files in the world-writable temp
    directories, SysV shared memory, message queues and semaphores, POSIX message queues."""
    remove_files_of(uid)
    remove_sysv_ipc_of(uid)
    remove_mqueues_of(uid)


def remove_sysv_ipc_of(uid):
    """SysV IPC objects the uid owns or created (listed in /proc/sysvipc; removed with IPC_RMID)."""
    if LIBC is None:
        return
    for kind, control in SYSV_IPC:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = [line.split() for line in f if line.strip()]
        except (OSError, ValueError):
            continue
        columns = {name: index for index, name in enumerate(header)}
        for row in rows:
            try:
                owners = {int(row[columns["uid"]]), int(row[columns["cuid"]])}
                ident = int(row[1])
            except (KeyError, IndexError, ValueError):
                continue
            if uid in owners:
                if kind == "sem":
                    LIBC.semctl(ident, 0, IPC_RMID, 0)
                else:
                    getattr(LIBC, control)(ident, IPC_RMID, None)


CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18


def remove_mqueues_of(uid):
    """POSIX message queues of the uid. Without an mqueue filesystem on /dev/mqueue they cannot be listed,
    so a helper mounts one in a mount namespace of its own (root only; skipped where that is refused)."""
    if LIBC is None:
        return
    point = tempfile.mkdtemp(prefix="userlm-mq-", dir=_lock_dir())
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            private = LIBC.unshare(CLONE_NEWNS) == 0
            if private and LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0:
                if LIBC.mount(b"mqueue", point.encode(), b"mqueue", 0, None) == 0:
                    for entry in os.listdir(point):
                        path = os.path.join(point, entry)
                        if os.lstat(path).st_uid == uid:
                            os.unlink(path)
                    code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
    try:
        os.rmdir(point)
    except OSError:
        pass


def remove_files_of(uid):
    """Files and directories the uid left in the world-writable temp directories."""
    for directory in SHARED_TMP:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(directory, entry)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if info.st_uid != uid:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass

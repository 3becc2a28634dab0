"""TRUSTED: the launcher. Started by `runner.py` with one `sandbox().exec` under `env -i`; prints one JSON report.

It picks the strongest isolation level it may use (`namespace`: bubblewrap, `namespace.py`; `user`: a leased
uid, `confine.py`; `process`), decodes encoded private tests in a confined worker of their own, starts the
candidate's worker, runs the tests itself (`judge.py`), then stops the worker and sweeps every process, file
and IPC object the run left (docs/grading.md#isolation-levels). Input (the bundle's "job"): {"spec", "limits"}; output: one JSON line on
stdout: {"result", "returncode", "timed_out", "elapsed_s", "killed_leftovers", "stderr_tail", "stdout_tail",
"isolation", "isolation_detail"}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from . import confine, judge, namespace, plain, wire

TAIL = 2000
STARTUP_S = 30.0
"""Time a fresh interpreter gets to boot (not counted against the candidate)."""
DECODE_S = 60.0
"""Time the decoding worker gets for LiveCodeBench's encoded private tests."""
UID_WAIT_S = 60.0
WORKER_MODULES = ("plain", "wire", "preamble", "worker")


def main(bundle):
    real_stdout = os.dup(1)
    os.dup2(2, 1)  # whatever trusted test code prints must not mix with the report
    report = Run(bundle).execute()
    os.write(real_stdout, (json.dumps(report) + "\n").encode("utf-8"))


class Run:
    def __init__(self, bundle):
        self.sources = dict(bundle["modules"])
        self.boot = bundle["boot"]
        self.spec = bundle["job"]["spec"]
        self.limits = bundle["job"]["limits"]
        self.started = time.monotonic()
        self.wall_deadline = self.started + float(self.limits["wall_s"])
        self.lease = self.cgroup = None
        self.workdir = self.logdir = None
        self.level = self.python = self.bwrap = None
        self.degraded = []
        self.seccomp = None
        self.swept_abandoned = 0
        self.left_in_sandbox = 0
        self.returncode = None
        self.channel = None

    def execute(self):
        report = {"returncode": None, "timed_out": False, "killed_leftovers": 0}
        try:
            self._isolate()
        except confine.ConfineError as ex:
            return dict(report, result={"passed": False, "error": f"cannot isolate the run: {ex}"})
        try:
            result = self._grade()
        except confine.ConfineError as ex:
            result = {"passed": False, "error": f"cannot isolate the run: {ex}"}
        except Exception:  # noqa: BLE001 - a broken test or a bug here, never the candidate's doing
            result = {"passed": False, "error": "grading failed:\n" + traceback.format_exc(limit=-3)}
        finally:
            over_wall = time.monotonic() >= self.wall_deadline
            report["killed_leftovers"] = self._clean_up()
        report.update(
            result=result,
            returncode=self.returncode,
            elapsed_s=round(time.monotonic() - self.started, 3),
            stderr_tail=_tail(os.path.join(self.logdir, "err")),
            stdout_tail=_tail(os.path.join(self.logdir, "out")),
            isolation=self.level,
            isolation_detail=self._detail(),
        )
        if over_wall and not result.get("passed"):
            report["timed_out"] = True
            result["error"] = f"killed at the wall timeout ({float(self.limits['wall_s']):g}s)"
        shutil.rmtree(self.logdir, ignore_errors=True)
        return report

    def _isolate(self):
        """Choose the strongest level allowed and available: namespace > user > process (docs/grading.md)."""
        self.requested = self.limits.get("isolation", "auto")
        self.hardening = confine.harden_launcher()
        reason = self._user_level_missing()
        if reason is not None:
            return self._use_process(reason)
        if self.requested in ("auto", "namespace"):
            missing = self._namespace_missing()
            if missing is None:
                return self._use_user_uid("namespace")
            if self.requested == "namespace":
                raise confine.ConfineError("isolation='namespace' impossible: " + missing)
            self.degraded.append(missing)
        return self._use_user_uid("user")

    def _user_level_missing(self):
        if self.requested == "process":
            return "process isolation requested"
        if os.geteuid() != 0:
            return "the launcher is not root"
        if not confine.can_switch_users():
            return "the launcher may not change uids (no CAP_SETUID/CAP_SETGID)"
        return None

    def _namespace_missing(self):
        """Why the `namespace` level cannot be used here (None: it can)."""
        self.bwrap = namespace.find_bwrap()
        if self.bwrap is None:
            return "no namespaces: bubblewrap (bwrap) is not installed"
        if self.limits.get("worker_python"):
            return "no namespaces: worker_python is set (the namespace level runs the launcher's interpreter)"
        python = namespace.worker_interpreter()
        if not confine.others_can_run(python):
            return f"no namespaces: {python} or its standard library is not readable by other users"
        return None

    def _use_process(self, reason):
        if self.requested in ("user", "namespace"):
            raise confine.ConfineError(f"isolation={self.requested!r} impossible: " + reason)
        self.level = "process"
        self.degraded.append(reason)
        self.python = self.limits.get("worker_python") or sys.executable
        self.cgroup = confine.Cgroup.create(f"userlm-grading-p{os.getpid()}")
        confine.Cgroup.remove_abandoned()
        self.workdir = tempfile.mkdtemp(prefix="userlm_run_")
        self.logdir = tempfile.mkdtemp(prefix="userlm_log_")

    def _use_user_uid(self, level):
        """The `user` or `namespace` level: a leased uid (after sweeping what dead runs left on any uid)."""
        python = self._user_python() if level == "user" else namespace.worker_interpreter()
        if python is None:
            return self._use_process("no python3 that an unprivileged user can run")
        self.lease = confine.UidLease(int(self.limits["uid_base"]), int(self.limits["uid_count"]), UID_WAIT_S)
        self.swept_abandoned = confine.sweep_abandoned(self.lease)
        self.cgroup = confine.Cgroup.create(f"userlm-grading-{self.lease.uid}")
        if self.lease.dirty:  # what a launcher that died may have left under this uid
            confine.sweep(self.lease, None)
            confine.remove_leftovers_of(self.lease.uid)
        self.logdir = self.lease.private_dir()
        self._enter(level, python)
        return None

    def _user_python(self):
        return self.limits.get("worker_python") or confine.interpreter_for_others()

    def _enter(self, level, python):
        self.level, self.python = level, python
        self.seccomp = namespace.no_new_namespaces() if level == "namespace" else None
        if level == "namespace" and self.seccomp is None:
            self.degraded.append(f"no seccomp filter for {os.uname().machine}")
        if level == "user":  # a dead run's workdir goes with the uid's files
            self.workdir = tempfile.mkdtemp(prefix="userlm_run_")
            os.chown(self.workdir, self.lease.uid, self.lease.gid)

    def _detail(self):
        parts = []
        if self.level == "namespace":
            version = namespace.bwrap_version(self.bwrap, self.lease.directory)
            parts.append(f"namespaces (bubblewrap {version}: mount, pid, ipc, net, uts)")
            parts.append(f"{int(self.limits['disk_mb'])} MB tmpfs")
            if self.seccomp:
                parts.append("seccomp: no new namespaces")
        if self.lease is not None:
            parts.insert(0, f"uid {self.lease.uid}")
        parts += ["own session", "rlimits"]
        if all(self.hardening):
            parts.append("non-dumpable subreaper launcher")
        if self.cgroup is not None:
            parts.append("cgroup v2")
        if self.swept_abandoned:
            parts.append(f"swept {self.swept_abandoned} abandoned run(s)")
        detail = ", ".join(parts)
        return detail + (f" ({'; '.join(self.degraded)})" if self.degraded else "")

    def _degrade_from_namespace(self, why):
        """bubblewrap could not set the sandbox up: fall back to the `user` level, saying why."""
        self.degraded.append("no namespaces: " + why)
        python = self._user_python()
        if python is None:
            raise confine.ConfineError(
                f"no namespaces ({why}) and no python3 that an unprivileged user can run"
            )
        for name in ("out", "err"):  # bubblewrap's complaint is in the detail, not the candidate's stderr
            open(os.path.join(self.logdir, name), "wb").close()
        self._enter("user", python)

    def _grade(self):
        spec, timeout = self.spec, float(self.limits["timeout_per_test_s"])
        tests = list(spec.get("tests") or [])
        if spec["mode"] == "functional" and spec.get("private") is not None:
            private = self._decode_private(spec["private"])
            if isinstance(private, str):
                return {"passed": False, "n_tests": len(tests), "n_passed": 0, "error": private}
            tests += private
        n_tests = 1 if spec["mode"] == "check" else len(tests)
        target = spec["entry_point"] if spec["mode"] == "check" else spec["func_name"]
        job = {
            "op": "load",
            "program": spec["program"],
            "preamble": bool(spec.get("preamble")),
            "target": target,
            "solution_class": spec.get("solution_class"),
        }
        channel, reply = self._start(job, timeout)
        if isinstance(reply, str):
            return {"passed": False, "n_tests": n_tests, "n_passed": 0, "error": reply}
        if reply.get("load_error") is not None:
            return {"passed": False, "n_tests": n_tests, "n_passed": 0, "error": str(reply["load_error"])}
        if spec["mode"] == "check":
            return judge.run_check(channel, spec["check"], target, timeout, self.wall_deadline)
        return judge.run_functional(channel, tests, timeout, self.wall_deadline)

    def _decode_private(self, blob):
        """Plain tests from the encoded blob, decoded by a confined worker; a str is the reason it failed."""
        if isinstance(blob, list):
            return blob
        try:
            return json.loads(blob)
        except ValueError:
            pass
        channel, reply = self._start({"op": "decode", "blob": blob}, DECODE_S)
        self._stop(channel)
        confine.sweep(self.lease, self.cgroup)
        self.returncode = None
        if isinstance(reply, str) or "value" not in reply:
            why = reply if isinstance(reply, str) else reply.get("error")
            return f"could not decode private tests: {why}"
        try:
            tests = plain.decode(reply["value"])
        except ValueError as ex:
            return f"could not decode private tests: {ex}"
        valid = isinstance(tests, list) and all(
            isinstance(t, dict) and isinstance(t.get("input"), str) and isinstance(t.get("output"), str)
            for t in tests
        )
        return tests if valid else "could not decode private tests: not a list of {input, output} texts"

    def _start(self, job, timeout):
        """Start a worker and send it `job`; returns (channel, first reply) or (channel, reason it failed).
        `timeout`: seconds for the job, counted once the interpreter has booted."""
        channel, reply = self._boot()
        if isinstance(reply, namespace.NamespaceUnavailable):
            if self.requested == "namespace":
                raise confine.ConfineError(f"isolation='namespace' impossible: {reply}")
            self._degrade_from_namespace(str(reply))
            channel, reply = self._boot()
        if isinstance(reply, str) or channel is None:
            return channel, reply
        try:
            deadline = min(time.monotonic() + timeout, self.wall_deadline)
            channel.send(job, deadline)
            reply = channel.receive(deadline)
        except wire.WireTimeout:
            return channel, f"loading the code timed out after {timeout:g}s"
        except wire.WireError as ex:
            return channel, channel.gone(str(ex), "while loading")
        return channel, reply if isinstance(reply, dict) else "the test process broke the protocol"

    def _command(self):
        """The worker's command line at this level (bubblewrap first at the `namespace` level), its working
        directory, environment additions and the fds it must inherit besides the pipes."""
        boot = [self.python, "-I", "-S", "-B", "-u", "-c", self.boot]
        if self.level != "namespace":
            return boot, self.workdir, {"HOME": self.workdir, "TMPDIR": self.workdir}, ()
        disk = int(self.limits["disk_mb"]) * 1024 * 1024
        seccomp_fd = _readable(self.seccomp) if self.seccomp else None
        prefix = namespace.command(self.bwrap, self.python, disk, True, seccomp_fd)
        paths = {"HOME": namespace.SCRATCH, "TMPDIR": namespace.SCRATCH}
        return prefix + boot, None, paths, () if seccomp_fd is None else (seccomp_fd,)

    def _boot(self):
        """Start a worker interpreter and wait for it to boot: (channel, None), (channel or None, reason it
        failed) or (channel, NamespaceUnavailable) when bubblewrap could not set the sandbox up."""
        worker_bundle = {"modules": [[m, self.sources[m]] for m in WORKER_MODULES], "main": "worker"}
        command, cwd, paths, inherited = self._command()
        to_read, to_worker = os.pipe()
        from_worker, to_write = os.pipe()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **paths}
        command += [str(to_read), str(to_write)]
        if self.level == "namespace":
            command += [str(self.lease.uid), str(self.lease.gid)]
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        out = os.open(os.path.join(self.logdir, "out"), flags, 0o600)
        err = os.open(os.path.join(self.logdir, "err"), flags, 0o600)
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(to_read, to_write, *inherited),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd or "/",
                env=env,
                start_new_session=True,
                preexec_fn=confine.preexec(
                    self.limits, self.lease, self.cgroup, become=self.level != "namespace"
                ),
            )
        except (OSError, subprocess.SubprocessError) as ex:  # e.g. a uid the sandbox's user namespace lacks
            for fd in (to_read, to_worker, from_worker, to_write):
                os.close(fd)
            return None, f"could not start the test process with {self.python}: {ex}"
        finally:
            for fd in (out, err, *inherited):
                os.close(fd)
        os.close(to_read)
        os.close(to_write)
        os.set_blocking(to_worker, False)
        os.set_blocking(from_worker, False)
        channel = judge.Channel(process, to_worker, from_worker)
        self.channel = channel
        boot_deadline = time.monotonic() + STARTUP_S
        try:
            channel.send(worker_bundle, boot_deadline)
            channel.receive(boot_deadline)
        except wire.WireError as ex:
            if self.level == "namespace":  # nothing of the candidate's has run: the sandbox did not start
                self._stop(channel)
                return channel, namespace.NamespaceUnavailable(self._sandbox_failure() or str(ex))
            if isinstance(ex, wire.WireTimeout):
                return channel, f"the test process did not start within {STARTUP_S:g}s"
            return channel, channel.gone(str(ex), "while starting")
        return channel, None

    def _sandbox_failure(self):
        """Why the sandboxed interpreter did not boot: bubblewrap's own error line, else the first line the
        interpreter wrote (nothing of the candidate's has run yet, so this text is ours or bubblewrap's)."""
        lines = _tail(os.path.join(self.logdir, "err")).strip().splitlines()
        setup = [line for line in lines if line.startswith(namespace.SETUP_FAILED)]
        return (setup or lines or [""])[0][:300] or None

    def _stop(self, channel):
        if channel is None:
            return
        self.returncode = channel.process.poll()
        if self.returncode is None and self.level == "namespace":
            self.left_in_sandbox += namespace.end(channel.process, self.lease.uid, self.cgroup)
        elif self.returncode is None:
            channel.process.kill()
        channel.process.wait()
        for fd in (channel.to_worker, channel.from_worker):
            try:
                os.close(fd)
            except OSError:
                pass

    def _clean_up(self):
        """Stop the worker, kill everything the run started, remove its files, give the uid back."""
        self._stop(self.channel)
        left = confine.sweep(self.lease, self.cgroup) + self.left_in_sandbox
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.lease is not None:
            if self.level != "namespace":  # a namespaced worker cannot write outside its own tmpfs
                confine.remove_leftovers_of(self.lease.uid)
            self.lease.release(clean=True)
        return left


def _readable(data):
    """A pipe's read end holding `data` (small: it fits in the pipe's buffer)."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return read_end


def _tail(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""

"""TRUSTED: the launcher. Started by `runner.py` with one `sandbox().exec` under `env -i`; prints one JSON report.

It leases an isolation level (`confine.py`), decodes encoded private tests in a confined worker of their own,
starts the candidate's worker, runs the tests itself (`judge.py`), then stops the worker and sweeps every
process and file the run left. Input (the bundle's "job"): {"spec", "limits"}; output: one JSON line on
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

from . import confine, judge, plain, wire

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
        self.returncode = None
        self.channel = None

    def execute(self):
        report = {"returncode": None, "timed_out": False, "killed_leftovers": 0}
        try:
            level, detail = self._isolate()
        except confine.ConfineError as ex:
            return dict(report, result={"passed": False, "error": f"cannot isolate the run: {ex}"})
        report.update(isolation=level, isolation_detail=detail)
        try:
            result = self._grade()
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
        )
        if over_wall and not result.get("passed"):
            report["timed_out"] = True
            result["error"] = f"killed at the wall timeout ({float(self.limits['wall_s']):g}s)"
        shutil.rmtree(self.logdir, ignore_errors=True)
        return report

    def _isolate(self):
        requested = self.limits.get("isolation", "auto")
        self.python = self.limits.get("worker_python") or sys.executable
        hardening = confine.harden_launcher()
        extras = ["own session", "rlimits"]
        if all(hardening):
            extras.append("non-dumpable subreaper launcher")
        reason = None
        if requested == "process":
            reason = "process isolation requested"
        elif os.geteuid() != 0:
            reason = "the launcher is not root"
        elif not confine.can_switch_users():
            reason = "the launcher may not change uids (no CAP_SETUID/CAP_SETGID)"
        elif not self.limits.get("worker_python"):
            python = confine.interpreter_for_others()
            if python is None:
                reason = "no python3 that an unprivileged user can run"
            else:
                self.python = python
        if reason is not None:
            if requested == "user":
                raise confine.ConfineError("isolation='user' impossible: " + reason)
            level = "process"
            self.cgroup = confine.Cgroup.create(f"userlm-grading-p{os.getpid()}")
        else:
            level = "user"
            self.lease = confine.UidLease(
                int(self.limits["uid_base"]), int(self.limits["uid_count"]), UID_WAIT_S
            )
            self.cgroup = confine.Cgroup.create(f"userlm-grading-{self.lease.uid}")
            if self.lease.dirty:  # what a launcher that died may have left under this uid
                confine.sweep(self.lease, None)
                confine.remove_files_of(self.lease.uid)
            extras.insert(0, f"uid {self.lease.uid}")
        if self.cgroup is not None:
            extras.append("cgroup v2")
        self.workdir = tempfile.mkdtemp(prefix="userlm_run_")
        if self.lease is not None:  # a dead run's workdir goes with the uid's files, its logs with the lease
            os.chown(self.workdir, self.lease.uid, self.lease.gid)
            self.logdir = self.lease.private_dir()
        else:
            self.logdir = tempfile.mkdtemp(prefix="userlm_log_")
        return level, ", ".join(extras) + ("" if reason is None else f" ({reason})")

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
        worker_bundle = {"modules": [[m, self.sources[m]] for m in WORKER_MODULES], "main": "worker"}
        to_read, to_worker = os.pipe()
        from_worker, to_write = os.pipe()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self.workdir, "TMPDIR": self.workdir}
        env["LANG"] = "C.UTF-8"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        out = os.open(os.path.join(self.logdir, "out"), flags, 0o600)
        err = os.open(os.path.join(self.logdir, "err"), flags, 0o600)
        try:
            process = subprocess.Popen(
                [self.python, "-I", "-B", "-u", "-c", self.boot, str(to_read), str(to_write)],
                pass_fds=(to_read, to_write),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
                preexec_fn=confine.preexec(self.limits, self.lease, self.cgroup),
            )
        except (OSError, subprocess.SubprocessError) as ex:  # e.g. a uid the sandbox's user namespace lacks
            for fd in (to_read, to_worker, from_worker, to_write):
                os.close(fd)
            return None, f"could not start the test process with {self.python}: {ex}"
        finally:
            os.close(out)
            os.close(err)
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
            deadline = min(time.monotonic() + timeout, self.wall_deadline)
            channel.send(job, deadline)
            reply = channel.receive(deadline)
        except wire.WireTimeout:
            return channel, f"loading the code timed out after {timeout:g}s"
        except wire.WireError as ex:
            return channel, channel.gone(str(ex), "while loading")
        return channel, reply if isinstance(reply, dict) else "the test process broke the protocol"

    def _stop(self, channel):
        if channel is None:
            return
        self.returncode = channel.process.poll()
        if self.returncode is None:
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
        left = confine.sweep(self.lease, self.cgroup)
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.lease is not None:
            confine.remove_files_of(self.lease.uid)
            self.lease.release(clean=True)
        return left


def _tail(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""

"""What the benchmark scripts share: processes (spawn, stop, wait for HTTP),
ports, /proc readings, and the one error a broken run raises.

The scripts import it from their own directory (`infra/bench/`):

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import Failure, free_port, ...
"""
import os
import signal
import socket
import subprocess
import time
import urllib.request


class Failure(Exception):
    """The run is broken (a process died, a count is off, time ran out), not a missed goal."""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def remaining(deadline):
    """Seconds left before `deadline` (time.time()); Failure when none."""
    left = deadline - time.time()
    if left <= 0:
        raise Failure("total time bound reached")
    return left


def http(url, data=None, headers=None, timeout=5.0, method=None):
    """(status, body) of one request."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def tail(path, lines=30):
    """The last `lines` lines of a log, or "" when it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def check_alive(proc, what, log):
    """Failure, with the tail of its log, when `proc` has exited."""
    if proc is not None and proc.poll() is not None:
        raise Failure(f"{what} exited with {proc.returncode}\n{tail(log) if log else ''}")


def wait_http(url, deadline, what, proc=None, log=None, limit=None):
    """Until `url` answers 200: True. False after `limit` seconds, when given;
    Failure when `proc` dies or `deadline` passes."""
    end = time.time() + limit if limit else None
    while True:
        check_alive(proc, what, log)
        try:
            if http(url, timeout=min(2.0, remaining(deadline)))[0] == 200:
                return True
        except Failure:
            raise
        except Exception:
            pass
        if end and time.time() > end:
            return False
        time.sleep(0.05)


def rss(pid, field):
    """A /proc/PID/status memory field (VmRSS, VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def mib(kib):
    return round(kib / 1024, 1)


def spawn(cmd, log, **kw):
    """`cmd` in its own process group, stdout and stderr to `log`."""
    out = open(log, "wb")
    try:
        return subprocess.Popen(cmd, stdout=kw.pop("stdout", out), stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kw)
    finally:
        out.close()


def stop(proc):
    """TERM the process group, KILL it after 5 s, reap."""
    if proc is None or proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass

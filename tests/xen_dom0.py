#!/usr/bin/python3
"""The dom0 half of tests/test_xen_field.py: runs INSIDE a Xen dom0 (scripts/build-dom0.py),
on Debian's python3 with nothing but the standard library.

The test packs this file as ``run`` into a tar archive on dom0's /dev/vdb, beside this
pygrub's .deb and ``cases.json``; dom0's unit unpacks it at boot and runs it with its
output on hvc0 (dom0's console: Xen's com1, QEMU's serial port). It installs the .deb as
README's "Install system-wide" tells an administrator to, then runs each case with xl
and prints one ``RESULT {json}`` line per case, then DONE, then powers dom0 off.

A case: {"name", "kind", "disk", "bootloader"}; kind is
- "normal": ``xl create`` of a PV domain, ``bootloader =`` the given one; the domain runs
  until the guest powers itself off; xenconsoled's log of its console is the evidence.
- "restricted": the same with libxl's restricted mode: Xen 4.17 takes it only from
  xl's environment (LIBXL_BOOTLOADER_RESTRICT, LIBXL_BOOTLOADER_USER), 4.20 from the
  config's bootloader_restrict and bootloader_user (its xl.cfg(5)).
- "menu": ``xl create -c`` on a pty: the menu on the domain console, Up and Enter.
- "fail": the disk holds no bootloader config: xl create must fail.
The restricted and menu domains are destroyed once their marker is on the console: the
guest's own power-off, a minute or two under TCG, is proven by the normal case already.
"""

from __future__ import annotations

import glob
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

RESULT, DONE, INFO = "PYGRUB-XEN-RESULT", "PYGRUB-XEN-DONE", "PYGRUB-XEN-INFO"
GUEST_MARKER = b"PYGRUB-GUEST-UP"
#: Under TCG a Debian guest's boot to multi-user takes minutes.
BOOT_TIMEOUT = 1500
#: Where libxl and pygrub may leave files behind (XEN_RUN_DIR, XEN_LIB_DIR, temp dirs).
WATCHED = ("/run/xen", "/var/lib/xen", "/tmp", "/var/tmp")
UP, ENTER = b"\x1b[A", b"\r"
#: What xl -vvv adds to xl's own stderr: libxl's debug lines, libxc's details.
VERBOSE = re.compile(r": (debug|detail|verbose): ")
#: The guest journal's lines that say where its boot time went.
JOURNAL_KEPT = re.compile(r"Startup finished|[Tt]imed out|Reached target|Failed|PYGRUB")


def say(tag: str, value: object) -> None:
    print(f"{tag} {json.dumps(value)}", flush=True)


def run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL, **kwargs
    )


def xen_series() -> str:
    info = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in run("xl", "info").stdout.splitlines())
    )
    return f"{info.get('xen_major')}.{info.get('xen_minor')}"


def install_deb() -> dict:
    """apt-get install ./pygrub_*_all.deb, as README's "Install system-wide" says."""
    debs = glob.glob("pygrub_*_all.deb")
    proc = run(
        "apt-get", "install", "-y", "-q", f"./{debs[0]}",
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )  # fmt: skip
    return {
        "rc": proc.returncode,
        "output": (proc.stdout + proc.stderr)[-2000:],
        "diversions": run("dpkg-divert", "--list", "*pygrub*").stdout.splitlines(),
        "version": run("pygrub", "--version").stdout.strip(),
    }


def paths_now() -> set[str]:
    found = set()
    for top in WATCHED:
        for root, dirs, files in os.walk(top):
            found.update(os.path.join(root, name) for name in dirs + files)
    return found


def config(case: dict, series: str, user: str) -> str:
    lines = [
        f'name = "{case["name"]}"',
        'type = "pv"',
        "memory = 512",
        "vcpus = 1",
        f'bootloader = "{case["bootloader"]}"',
        f'disk = [ "format=raw, vdev=xvda, access=rw, target={case["disk"]}" ]',
        'on_poweroff = "destroy"',
        'on_reboot = "destroy"',
        'on_crash = "destroy"',
    ]
    if case["kind"] == "restricted" and series != "4.17":
        lines += ["bootloader_restrict = 1", f'bootloader_user = "{user}"']
    return "".join(line + "\n" for line in lines)


def environment(case: dict, series: str, user: str) -> dict[str, str]:
    env = dict(os.environ)
    if case["kind"] == "restricted" and series == "4.17":
        env.update(LIBXL_BOOTLOADER_RESTRICT="1", LIBXL_BOOTLOADER_USER=user)
    return env


def domain_exists(name: str) -> bool:
    return run("xl", "domid", name).returncode == 0


def wait_for_end(name: str, deadline: float, until_marker: bool) -> str:
    """How the domain ended: "poweroff" (gone by itself), "marker" (destroyed once its
    marker was on the console, if ``until_marker``) or "timeout" (destroyed)."""
    while time.monotonic() < deadline:
        if not domain_exists(name):
            return "poweroff"
        if until_marker and marker_line(console_log(name)):
            run("xl", "destroy", name)
            return "marker"
        time.sleep(2)
    run("xl", "destroy", name)
    return "timeout"


def console_log(name: str) -> bytes:
    try:
        with open(f"/var/log/xen/console/guest-{name}.log", "rb") as f:
            return f.read()
    except OSError:
        return b""


def marker_line(console: bytes) -> str | None:
    """The marker's line, once its newline has arrived too (a console read can end
    in the middle of it)."""
    for line in console.split(b"\n")[:-1]:
        if GUEST_MARKER in line:
            return line[line.index(GUEST_MARKER) :].decode(errors="replace").strip()
    return None


def read_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]
    except OSError:
        return ""


def newest_bootloader_log() -> str:
    """What the bootloader wrote on its pty: libxl gives it stdin, stdout AND stderr
    there (login_tty) and logs it to /var/log/xen/bootloader.DOMID.log."""
    logs = sorted(glob.glob("/var/log/xen/bootloader.*.log"), key=os.path.getmtime)
    return read_tail(logs[-1]) if logs else ""


def bootloader_args(verbose: str) -> list[str]:
    """The bootloader's argv as libxl logs it under xl -vvv ("  bootloader arg: ...")."""
    return [
        line.split("bootloader arg: ", 1)[1]
        for line in verbose.splitlines()
        if "bootloader arg: " in line
    ]


def guest_journal(disk: str) -> list[str]:
    """How the guest's boot went, from its own journal (its disk is free again once the
    domain is gone): the lines that say where boot time went."""
    os.makedirs("/mnt/guest", exist_ok=True)
    for part in sorted(glob.glob(f"{disk}[0-9]*")):
        if run("mount", "-o", "ro", part, "/mnt/guest").returncode != 0:
            continue
        try:
            journal = "/mnt/guest/var/log/journal"
            if os.path.isdir(journal):
                argv = ("journalctl", "-D", journal, "-b", "-o", "short-monotonic", "--no-pager")
                lines = run(*argv).stdout.splitlines()
                return [line for line in lines if JOURNAL_KEPT.search(line)][-40:]
        finally:
            run("umount", "/mnt/guest")
    return [f"no journal found on {disk}"]


def create(case: dict, cfg: str, env: dict[str, str]) -> dict:
    """xl create, timed until it returns (the bootloader ran and the domain was built),
    then the domain's whole life until the guest powers it off."""
    start = time.monotonic()
    proc = run("xl", "-vvv", "create", cfg, env=env, timeout=BOOT_TIMEOUT)
    created = time.monotonic() - start
    said = [line for line in proc.stderr.splitlines() if not VERBOSE.search(line)]
    result = {
        "rc": proc.returncode,
        "stdout": proc.stdout[-3000:],
        "stderr": "\n".join(said)[-3000:],
    }
    result["bootloader_args"] = bootloader_args(proc.stderr)
    result["create_seconds"] = round(created, 1)
    if proc.returncode == 0:
        until_marker = case["kind"] != "normal"
        result["ended"] = wait_for_end(case["name"], start + BOOT_TIMEOUT, until_marker)
        result["run_seconds"] = round(time.monotonic() - start, 1)
    else:
        result["bootloader_log"] = newest_bootloader_log()
    return result


def create_on_console(case: dict, cfg: str, env: dict[str, str]) -> dict:
    """xl create -c on a pty: once the menu is drawn, Up then Enter."""
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("xl", ["xl", "create", "-c", cfg], env)
    seen = bytearray()
    keyed_at = None
    deadline = start + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            seen += chunk
        if keyed_at is None and b"Advanced options" in seen:
            time.sleep(1)  # let the whole screen arrive; any key stops the countdown
            os.write(fd, UP)
            time.sleep(1)
            os.write(fd, ENTER)
            keyed_at = round(time.monotonic() - start, 1)
        if marker_line(bytes(seen)):
            break
    if marker_line(bytes(seen)):
        run("xl", "destroy", case["name"])
        ended = "marker"
    else:
        ended = wait_for_end(case["name"], deadline, until_marker=True)
    # xl's console client should end by itself once the domain is gone; killed, it exits
    # with -15 and the case fails.
    for _ in range(30):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(1)
    else:
        os.kill(pid, 15)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    result = {"rc": os.waitstatus_to_exitcode(status), "keyed_at": keyed_at, "ended": ended}
    result["console"] = seen.decode(errors="replace")[-6000:]
    result["run_seconds"] = round(time.monotonic() - start, 1)
    return result


def hotplug_timed_out(result: dict) -> bool:
    """Whether libxl killed a hotplug script (/etc/xen/scripts/block) at its timeout: seen
    once under TCG on two loaded cores, after pygrub had done its part. The case is tried
    once more; its result says how many attempts it took."""
    said = result.get("stderr", "") + result.get("console", "")
    return "/etc/xen/scripts/" in said and "because of timeout" in said


def run_case(case: dict, series: str) -> dict:
    user = f"xbl-{case['name']}"[:32]
    # A system user per domain, as libxl's restricted mode wants (trixie's minimal dom0 has
    # no useradd; systemd-sysusers is in both).
    run("systemd-sysusers", "--inline", f'u {user} - "pygrub for {case["name"]}"')
    cfg = f"/etc/xen/{case['name']}.cfg"
    with open(cfg, "w") as f:
        f.write(config(case, series, user))
    env = environment(case, series, user)
    before = paths_now()
    for attempt in (1, 2):
        if case["kind"] == "menu":
            result = create_on_console(case, cfg, env)
        else:
            result = create(case, cfg, env)
        if attempt == 2 or case["kind"] == "fail" or not hotplug_timed_out(result):
            break
        run("xl", "destroy", case["name"])  # what libxl may have left of the first domain
    result.update(case, series=series, config=config(case, series, user), attempts=attempt)
    result["bootloader_uid"] = int(run("id", "-u", user).stdout)
    console = console_log(case["name"])
    result["marker"] = marker_line(console) or marker_line(result.get("console", "").encode())
    result["guest_console"] = console.decode(errors="replace")[-3000:]
    # xl's own log of the domain says how it ended ("shut down, reason code 0": poweroff).
    result["xl_log"] = read_tail(f"/var/log/xen/xl-{case['name']}.log")
    time.sleep(2)  # libxl's cleanup after the domain's death
    result["left_behind"] = sorted(paths_now() - before)
    result["user_processes"] = run("pgrep", "-u", user, "-a").stdout.splitlines()
    # A bootloader killed by a signal leaves nothing in its log; the kernel says where.
    result["dmesg"] = run("dmesg").stdout.splitlines()[-15:]
    if case["kind"] != "fail":
        result["journal"] = guest_journal(case["disk"])
    return result


def main() -> None:
    run("dmesg", "-n", "1")  # kernel messages would break into our lines
    # xenconsoled --log=guest writes there but makes no directory (Debian ships none).
    os.makedirs("/var/log/xen/console", exist_ok=True)
    series = xen_series()
    units = ("xen", "xenstored", "xenconsoled", "xendomains")
    say(INFO, {
        "xen": series,
        "units": {u: run("systemctl", "is-active", f"{u}.service").stdout.strip() for u in units},
        "daemons": run("pgrep", "-a", "xen").stdout.splitlines(),
    })  # fmt: skip
    installed = install_deb()
    say(INFO, {"install": installed})
    with open("cases.json") as f:
        cases = json.load(f)
    for case in cases:
        say(INFO, {"starting": case["name"]})
        try:
            say(RESULT, run_case(case, series))
        except Exception as e:  # report it and go on with the next case
            say(RESULT, {**case, "error": f"{type(e).__name__}: {e}"})
    say(DONE, {"xen": series})
    sys.stdout.flush()
    subprocess.run(["systemctl", "--no-block", "poweroff"])


if __name__ == "__main__":
    main()

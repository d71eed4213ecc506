"""The sandbox's system-call filter, one source of truth for both backends.

Docker's default allowlist (moby ``profiles/seccomp/default.json``, the rules that hold
for a container without capabilities) minus what a broker never needs: kernel objects
that outlive the process that made them (SysV IPC, POSIX message queues, keyrings),
asynchronous-I/O engines, other processes' memory, namespaces and mounts, and the
host-level calls Docker only allows with a capability we drop anyway.

* Docker: :func:`docker_profile` is written to ``sandbox/seccomp.json`` (committed;
  ``python -m brokerage.sandbox.seccomp --write`` regenerates it, a test checks it is
  current) and passed as ``security_opt=["seccomp=<json>"]``.
* bubblewrap: :func:`export_bpf` compiles the same rules with libseccomp (Debian's
  ``python3-seccomp``) into a BPF program that ``bwrap --seccomp FD`` installs just
  before the runner starts. ``python3-seccomp`` lives in Debian's own python3, not in
  the project's virtualenv, so :func:`build_bpf` runs this file there:
  ``/usr/bin/python3 -I sandbox/seccomp.py --bpf OUT``. This module therefore imports
  only the standard library.

Denied calls fail with ``EPERM`` (as Docker's default action), or ``ENOSYS`` where
callers are written to fall back when the kernel lacks the call (``clone3`` → glibc
uses ``clone``; ``io_uring``, AIO). Only the native architecture is allowed: 32-bit
and x32 system calls kill the process (libseccomp's and runc's default for an
architecture the filter does not list).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PROFILE_PATH = Path(__file__).with_name("seccomp.json")
"""the Docker profile, generated from this module"""
GVISOR_PROFILE_PATH = Path(__file__).with_name("seccomp-gvisor.json")
"""the same denials for gVisor (``runsc --oci-seccomp``), as a denylist: gVisor's
(2022-12) filter refuses ``select`` under any allowlist profile, Docker's own default
included, so there the profile allows by default and denies each family by name"""
SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's python3, which has python3-seccomp (libseccomp's binding)"""

_DOCKER_DEFAULT = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents
getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace arch_prctl modify_ldt
"""
DOCKER_DEFAULT_ALLOW = tuple(_DOCKER_DEFAULT.split())
"""Docker's default allowlist for a container with no capabilities (x86-64 and aarch64;
``ptrace`` and ``process_vm_*`` are Docker's "kernel >= 4.8" rule; ``arch_prctl`` and
``modify_ldt`` its x86 rules). ``socket``, ``personality`` and ``clone`` are allowed only
with the arguments in :data:`ARG_RULES`."""

ENOSYS_REASON = "callers fall back when the kernel lacks it"

DENIED: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "sysv-ipc": (errno.EPERM, "SysV shared memory, message queues and semaphores live in "
                 "the IPC namespace, not the process: they outlive a run (and under "
                 "bubblewrap escape its memory limit)",
                 ("ipc", "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv",
                  "msgctl", "semget", "semop", "semtimedop", "semtimedop_time64", "semctl")),
    "posix-mqueue": (errno.EPERM, "POSIX message queues outlive the process that made them",
                     ("mq_open", "mq_unlink", "mq_timedsend", "mq_timedsend_time64",
                      "mq_timedreceive", "mq_timedreceive_time64", "mq_notify",
                      "mq_getsetattr")),
    "keyrings": (errno.EPERM, "kernel keyrings are not namespaced: a session keyring is "
                 "shared with whatever started the sandbox",
                 ("add_key", "request_key", "keyctl")),
    "async-io": (errno.ENOSYS, "io_uring and Linux AIO: large kernel attack surface, no "
                 "broker needs them; " + ENOSYS_REASON,
                 ("io_uring_setup", "io_uring_enter", "io_uring_register", "io_setup",
                  "io_submit", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
                  "io_cancel", "io_destroy")),
    "clone3": (errno.ENOSYS, "clone3's flags sit in memory a filter cannot read, so the "
               "namespace flags could not be checked; " + ENOSYS_REASON, ("clone3",)),
    "other-processes": (errno.EPERM, "reading or steering another process (the runner, "
                        "the next run's child)",
                        ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
                         "pidfd_getfd", "process_madvise", "process_mrelease")),
    "memory-tricks": (errno.EPERM, "page-fault handling in user space and secret or "
                      "remapped memory: exploit primitives, never needed by a broker",
                      ("userfaultfd", "memfd_secret", "remap_file_pages", "vmsplice",
                       "mbind", "set_mempolicy", "migrate_pages", "move_pages")),
    "namespaces-mounts": (errno.EPERM, "new namespaces, mounts and root changes",
                          ("unshare", "setns", "mount", "umount", "umount2", "pivot_root",
                           "chroot", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount",
                           "open_tree", "mount_setattr")),
    "kernel-host": (errno.EPERM, "the host kernel's own state: modules, kexec, BPF, perf, "
                    "logs, clocks, swap, quotas, accounting, I/O ports",
                    ("kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module",
                     "delete_module", "bpf", "perf_event_open", "syslog", "acct", "swapon",
                     "swapoff", "quotactl", "quotactl_fd", "lookup_dcookie", "iopl", "ioperm",
                     "settimeofday", "clock_settime", "clock_settime64", "adjtimex",
                     "clock_adjtime", "clock_adjtime64", "vhangup", "nfsservctl",
                     "sethostname", "setdomainname")),
    "file-handles": (errno.EPERM, "file handles open files by inode, around path checks",
                     ("name_to_handle_at", "open_by_handle_at")),
    "fanotify": (errno.EPERM, "filesystem-wide event monitoring",
                 ("fanotify_init", "fanotify_mark")),
}  # fmt: skip
"""denied families: errno returned, why, the calls"""

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCKET_FAMILIES = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)
"""address families a broker may open: Unix (the egress bridge), IPv4/IPv6 (loopback to
the bridge), netlink (glibc's getaddrinfo asks it for local addresses)"""
PERSONALITIES = (0x0, 0xFFFFFFFF)
"""PER_LINUX and the query; no ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC or other tricks"""
CLONE_NAMESPACE_FLAGS = 0x7E020000
"""CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: clone must set none"""

ARG_RULES: tuple[tuple[str, int, str, int, int], ...] = (
    *(("socket", 0, "SCMP_CMP_EQ", family, 0) for family in SOCKET_FAMILIES),
    *(("personality", 0, "SCMP_CMP_EQ", value, 0) for value in PERSONALITIES),
    ("clone", 0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),
)
"""(call, argument index, comparison, value, second value) rules that allow a call"""


def denied() -> dict[str, int]:
    """Every denied call and the errno it returns."""
    return {name: err for err, _, names in DENIED.values() for name in names}


def allowed() -> list[str]:
    """The calls allowed whatever their arguments."""
    deny = denied()
    return sorted(name for name in set(DOCKER_DEFAULT_ALLOW) if name not in deny)


def docker_profile() -> dict[str, Any]:
    """The Docker (OCI) seccomp profile: JSON as ``--security-opt seccomp=`` takes it."""
    rules: list[dict[str, Any]] = [
        {"names": allowed(), "action": "SCMP_ACT_ALLOW",
         "comment": "Docker's default allowlist minus the denied families below"},
    ]  # fmt: skip
    for call, index, op, value, value_two in ARG_RULES:
        arg: dict[str, Any] = {"index": index, "value": value, "op": op}
        if value_two:
            arg["valueTwo"] = value_two
        rules.append({"names": [call], "action": "SCMP_ACT_ALLOW", "args": [arg]})
    for family, (err, reason, names) in DENIED.items():
        rules.append({"names": sorted(names), "action": "SCMP_ACT_ERRNO", "errnoRet": err,
                      "comment": f"{family}: {reason}"})  # fmt: skip
    return {
        "comment": "generated by brokerage/sandbox/seccomp.py; do not edit",
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []},
        ],
        "syscalls": rules,
    }


def gvisor_profile() -> dict[str, Any]:
    """The denied families as a denylist profile for gVisor (see GVISOR_PROFILE_PATH).

    gVisor implements every call in its own kernel (the Sentry), itself confined by a
    host seccomp filter; this profile closes, inside the sandbox, the channels that
    would outlive a run (SysV IPC, message queues, keyrings) and the rest of DENIED.
    """
    rules: list[dict[str, Any]] = []
    for family, (err, reason, names) in DENIED.items():
        rules.append({"names": sorted(names), "action": "SCMP_ACT_ERRNO", "errnoRet": err,
                      "comment": f"{family}: {reason}"})  # fmt: skip
    for bit in range(32):
        flag = 1 << bit
        if CLONE_NAMESPACE_FLAGS & flag:
            rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": errno.EPERM, "args": [
                              {"index": 0, "value": flag, "valueTwo": flag,
                               "op": "SCMP_CMP_MASKED_EQ"}]})  # fmt: skip
    return {
        "comment": "generated by brokerage/sandbox/seccomp.py; do not edit",
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": rules,
    }


def profile_text(gvisor: bool = False) -> str:
    return json.dumps(gvisor_profile() if gvisor else docker_profile(), indent=1) + "\n"


@functools.cache
def docker_security_opt(gvisor: bool = False) -> str:
    """``seccomp=<profile>`` for Docker's ``security_opt`` (the API takes the JSON itself)."""
    path = GVISOR_PROFILE_PATH if gvisor else PROFILE_PATH
    return "seccomp=" + json.dumps(json.loads(path.read_text()), separators=(",", ":"))


def policy_hash() -> str:
    """Names the compiled BPF: changes whenever the rules do."""
    return hashlib.sha256(profile_text().encode()).hexdigest()[:12]


# -- bubblewrap: the same rules as a BPF program (libseccomp) ----------------------------


def export_bpf(out: str) -> None:
    """Compile the rules with libseccomp into ``out`` (runs under Debian's python3)."""
    import seccomp as libseccomp

    ops = {"SCMP_CMP_EQ": libseccomp.EQ, "SCMP_CMP_MASKED_EQ": libseccomp.MASKED_EQ}
    bpf = libseccomp.SyscallFilter(libseccomp.ERRNO(errno.EPERM))
    for name in allowed():
        _add(bpf, libseccomp.ALLOW, name)
    for call, index, op, value, value_two in ARG_RULES:
        if op == "SCMP_CMP_MASKED_EQ":
            arg = libseccomp.Arg(index, ops[op], value, value_two)
        else:
            arg = libseccomp.Arg(index, ops[op], value)
        _add(bpf, libseccomp.ALLOW, call, arg)
    for err, _, names in DENIED.values():
        if err != errno.EPERM:  # EPERM is the default action already
            for name in names:
                _add(bpf, libseccomp.ERRNO(err), name)
    with open(out, "wb") as handle:
        bpf.export_bpf(handle)


def _add(bpf: Any, action: Any, name: str, *args: Any) -> None:
    # a call this libseccomp or architecture does not know stays denied (the default)
    with contextlib.suppress(RuntimeError, ValueError):
        bpf.add_rule(action, name, *args)


def build_bpf(cache_dir: Path) -> Path:
    """``cache_dir/seccomp-<hash>.bpf``, compiled when missing. Idempotent."""
    from brokerage.sandbox.errors import ImageError

    target = cache_dir / f"seccomp-{policy_hash()}.bpf"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", str(Path(__file__)), "--bpf", str(partial)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ImageError(
            "cannot compile the bubblewrap seccomp filter (scripts/setup-sandbox.sh installs "
            f"Debian's python3-seccomp): {done.stderr.strip()[-500:]}"
        )
    partial.rename(target)
    return target


def main(argv: list[str]) -> int:
    if argv[:1] == ["--bpf"] and len(argv) == 2:
        export_bpf(argv[1])
        return 0
    files = {PROFILE_PATH: profile_text(), GVISOR_PROFILE_PATH: profile_text(gvisor=True)}
    if argv == ["--write"]:
        for path, text in files.items():
            path.write_text(text)
        return 0
    if argv == ["--check"]:
        stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
        print(f"stale, run --write: {stale}" if stale else "up to date")
        return 1 if stale else 0
    print("usage: seccomp.py --write | --check | --bpf OUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

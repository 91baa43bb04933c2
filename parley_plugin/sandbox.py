"""Confinement the plugin process applies to itself before any plugin code is imported.

Run first thing by `runner.py`, with the limits the server sent in its hello:
- resource limits: address space (memory), CPU seconds, open files, file size, no core dumps,
  and a lower scheduling priority than the server;
- its own PID and mount namespaces when the kernel lets it create them (as root, or through a
  user namespace of its own otherwise): the plugin runs as PID 1 of a namespace with a fresh
  /proc, sees no other process, and everything it left behind dies with it. Where that is not
  permitted it runs without (reported as `pid_namespace: false`);
- no new privileges, every capability dropped (a root parent's child cannot raise its limits
  back, read files it does not own, or signal and trace other processes);
- no new processes: a seccomp filter refuses fork, vfork and clone without CLONE_THREAD (threads
  stay possible, bounded by the address-space limit), so a fork bomb stops at its first fork;
- Landlock (Linux 5.13+): the file system is read-only on the interpreter and the plugin's code,
  writable only in the plugin's working directory, and nothing else (not the server's data
  directory, its database or /proc); TCP connections only to the server's port unless the
  manifest asks for the network (Linux 6.7+); no signals to or abstract sockets of processes
  outside the sandbox (Linux 6.12+).
Standard library only (ctypes)."""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import struct
import sys
from typing import Any

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_SYS_CAPSET = 126
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_THREAD = 0x20000, 0x10000000, 0x20000000, 0x10000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 0x4000, 0x40000
# audit arch -> (clone, clone3, other process-creating syscalls)
_PROCESS_SYSCALLS = {0xC000003E: (56, 435, (57, 58)),  # x86_64: fork, vfork
                     0xC00000B7: (220, 435, ())}  # aarch64 has clone only
_X32_BIT = 0x40000000

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(*args: Any) -> int:
    r = int(_libc.syscall(*args))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def set_limits(memory_mb: int, cpu_seconds: int, open_files: int, file_size_mb: int) -> None:
    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    size = file_size_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def landlock_abi() -> int:
    try:
        return _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)
    except OSError:
        return 0


def _add_path(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):
            rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        attr = struct.pack("=Qi", rights, fd)
        _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.c_char_p(attr), 0)
    finally:
        os.close(fd)


def landlock(read_paths: list[str], write_paths: list[str], tcp_ports: list[int] | None) -> int:
    """Restrict this process; returns the Landlock ABI used (0: not available, nothing done).
    `tcp_ports` None leaves the network alone."""
    abi = landlock_abi()
    if abi <= 0:
        return 0
    fs = _fs_rights(abi)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 and tcp_ports is not None else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = _syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.c_char_p(attr[:size]), size, 0)
    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for p in read_paths:
            _add_path(ruleset, p, read)
        for p in write_paths:
            _add_path(ruleset, p, fs)
        for port in (tcp_ports or []) if net else []:
            _syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 2,
                     ctypes.c_char_p(struct.pack("=QQ", _NET_CONNECT_TCP, port)), 0)
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    return abi


def drop_privileges() -> None:
    """No new privileges, no capabilities (effective, permitted, inheritable, bounding)."""
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows (or not allowed: none held)
    header = struct.pack("=Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)
    hdr_buf = ctypes.create_string_buffer(header, len(header))
    data_buf = ctypes.create_string_buffer(data, len(data))
    _syscall(_SYS_CAPSET, hdr_buf, data_buf)


def _unshare(flags: int) -> bool:
    return int(_libc.unshare(flags)) == 0


def _user_namespace() -> bool:
    """A user namespace of our own (same IDs inside), which lets a non-root process create PID
    and mount namespaces."""
    uid, gid = os.geteuid(), os.getegid()
    if not _unshare(_CLONE_NEWUSER):
        return False
    try:
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                           ("/proc/self/gid_map", f"{gid} {gid} 1")):
            with open(path, "w") as f:
                f.write(text)
    except OSError:
        pass  # unmapped IDs read as nobody inside; access outside is unchanged
    return True


def enter_namespaces() -> dict[str, Any]:
    """Move into new PID and mount namespaces if the kernel allows it. Forks: the caller
    continues in the child (PID 1 of the new namespace); the original process only waits for it
    and exits with its status, and the child is killed if the original dies."""
    out: dict[str, Any] = {"pid_namespace": False, "user_namespace": False, "proc": False}
    flags = _CLONE_NEWPID | _CLONE_NEWNS
    if not _unshare(flags):
        if not _user_namespace():
            return out
        out["user_namespace"] = True
        if not _unshare(flags):
            return out
    pid = os.fork()
    if pid:
        _wait_and_exit(pid)
    _libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    out["pid_namespace"] = True
    if _libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) == 0:
        out["proc"] = _libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) == 0
    return out


def _wait_and_exit(pid: int) -> None:
    """The original process: confined to nothing but waiting for the plugin's namespace."""
    try:
        landlock([], [], [])
        drop_privileges()
    except OSError:
        pass
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def _bpf(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def refuse_new_processes() -> bool:
    """Install the seccomp filter refusing new processes (EPERM; clone3 answers ENOSYS so that
    thread creation falls back to clone, which is allowed with CLONE_THREAD). False on
    architectures it does not know."""
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(platform.machine())
    if arch is None:
        return False
    clone, clone3, others = _PROCESS_SYSCALLS[arch]
    ld_w_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    # Classic BPF over seccomp_data (nr at 0, arch at 4, args[0] low word at 16): the checks,
    # then three return instructions at the end (allow, eperm, enosys); jumps count from the
    # next instruction.
    body: list[tuple[int | str, int]] = [(ld_w_abs, 4), ("jne_arch", arch), (ld_w_abs, 0)]
    if arch == 0xC000003E:
        body.append(("jge_eperm", _X32_BIT))
    body.append(("jeq_enosys", clone3))
    body += [("jeq_eperm", n) for n in others]
    body += [("jne_allow", clone), (ld_w_abs, 16), ("jset_allow", _CLONE_THREAD), ("eperm", 0)]
    prog = b""
    n = len(body)
    for i, (op, k) in enumerate(body):
        to_allow, to_eperm, to_enosys = n - i - 1, n - i, n - i + 1  # offsets past this instruction
        if op == "jne_arch":  # another ABI (i386 int 0x80 on x86_64): refused altogether
            prog += _bpf(jeq, k, 0, to_eperm)
        elif op == "jne_allow":
            prog += _bpf(jeq, k, 0, to_allow)
        elif op == "jge_eperm":
            prog += _bpf(jge, k, to_eperm, 0)
        elif op == "jeq_enosys":
            prog += _bpf(jeq, k, to_enosys, 0)
        elif op == "jeq_eperm":
            prog += _bpf(jeq, k, to_eperm, 0)
        elif op == "jset_allow":
            prog += _bpf(jset, k, to_allow, 0)
        elif op == "eperm":
            prog += _bpf(ret, eperm)
        elif isinstance(op, int):
            prog += _bpf(op, k)
    prog += _bpf(ret, allow) + _bpf(ret, eperm) + _bpf(ret, enosys)
    filt = ctypes.create_string_buffer(prog, len(prog))
    fprog = struct.pack("@HP", len(prog) // 8, ctypes.addressof(filt))
    fprog_buf = ctypes.create_string_buffer(fprog, len(fprog))
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, fprog_buf, 0, 0) != 0:
        return False
    return True


def confine(limits: dict[str, Any], read_paths: list[str], write_paths: list[str],
            tcp_ports: list[int] | None) -> dict[str, Any]:
    """Apply everything; what was applied (reported to the server in `ready`)."""
    namespaces = enter_namespaces()
    set_limits(int(limits["memory_mb"]), int(limits["cpu_seconds"]), int(limits["open_files"]),
               int(limits["file_size_mb"]))
    os.nice(10)  # a busy plugin yields the CPU to the server first
    interpreter = [os.path.realpath(p) for p in {sys.base_prefix, sys.prefix, os.path.dirname(sys.executable)}]
    system = ["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime"]
    abi = landlock([*interpreter, *system, *read_paths], [*write_paths, "/dev/null"], tcp_ports)
    drop_privileges()
    no_processes = refuse_new_processes()
    return {"landlock_abi": abi, "rlimits": True, "capabilities": "none",
            "new_processes": "refused" if no_processes else "allowed", **namespaces}

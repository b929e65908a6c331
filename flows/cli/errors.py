"""One place that turns what a user can cause into a message: a full disk, a read-only home, a
damaged lake table, model, checkpoint or vector space, a weights file atelier will not load.

Every `atelier` command runs inside :class:`AtelierGroup` (the root command group): an
exception that :func:`explain` recognises ends the command with one paragraph on stderr naming
the file and the fix, exit code 1, no traceback. ``--debug`` (anywhere on the command line) or
``ATELIER_DEBUG=1`` prints the traceback as well. An exception it does not recognise is a bug:
its traceback is shown as it is.

Recognised (anywhere in the exception's chain of causes):

- ``OSError`` ENOSPC / EDQUOT (or a library's "No space left on device (os error 28)"): disk full;
- EROFS, EACCES, EPERM: a read-only or not writable home (or an unreadable file outside it);
- a Parquet file that cannot be read (pyarrow's / DuckDB's "magic bytes"): the lake table, re-ingest;
- ``models.ModelFileError`` (a damaged model, checkpoint or ``--weights`` file), with the
  retrain / delete / ``atelier doctor`` fix for files of the home;
- every exception class of atelier's own packages (``etl``, ``store``, ``models``, ``flows``),
  whose messages are written for users (``LockHeld``, ``DamagedTableError``, ``NoModelError``, ...).

Kept light (no pyarrow, torch, duckdb imports): exceptions are recognised by class and module name.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer
from typer.core import TyperGroup

DEBUG_ENV = "ATELIER_DEBUG"
OWN_PACKAGES = ("etl", "store", "models", "flows")
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
# what Rust libraries (Lance, safetensors) write instead of an errno
OS_ERROR_TEXT = re.compile(r"\(os error (\d+)\)|(No space left on device)|(Read-only file system)|(Permission denied)")
TEXT_ERRNO = {2: errno.ENOSPC, 3: errno.EROFS, 4: errno.EACCES}  # group of OS_ERROR_TEXT -> errno
PARQUET_DAMAGE = re.compile(r"magic bytes|Parquet file size is|Couldn't deserialize thrift|invalid parquet|"
                            r"Parquet .*(corrupt|truncated)|not a parquet file", re.IGNORECASE)  # fmt: skip
QUOTED_FILE = re.compile(r"""['"]([^'"]+\.parquet)['"]""")


@dataclass
class State:
    debug: bool = False  # --debug or ATELIER_DEBUG=1
    home: Path | None = None  # the --home of the running command (for messages)


state = State()


def debug_enabled() -> bool:
    return state.debug or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def remember_home(value):
    """Callback of the shared ``--home`` option: the messages name the command's home."""
    state.home = Path(value) if value is not None else None
    return value


def _home() -> Path:
    if state.home is not None:
        return state.home
    from store.lake import default_home  # light: no pyarrow at import

    return Path(default_home())  # an s3:// home: only named in messages


# -- recognising -----------------------------------------------------------------------------


def causes(e: BaseException) -> Iterator[BaseException]:
    """``e`` and its causes / contexts, each once, nearest first."""
    seen: set[int] = set()
    todo = [e]
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        todo += [x.__cause__, x.__context__]


def _is(e: BaseException, name: str, module_prefix: str = "") -> bool:
    return any(k.__name__ == name and k.__module__.startswith(module_prefix) for k in type(e).__mro__)


def _own(e: BaseException) -> bool:
    """An exception class defined in atelier's packages (its message is written for users)."""
    return type(e).__module__.split(".")[0] in OWN_PACKAGES


def os_error(e: BaseException) -> tuple[int, str | None] | None:
    """(errno, file) of the first disk-full / not-writable error in the chain, else None."""
    for x in causes(e):
        if isinstance(x, OSError) and x.errno in DISK_FULL | NOT_WRITABLE:
            return x.errno, x.filename
        m = OS_ERROR_TEXT.search(str(x)) if not isinstance(x, OSError) or x.errno is None else None
        if m and not _is(x, "FileNotFoundError"):
            code = int(m.group(1)) if m.group(1) else TEXT_ERRNO[m.lastindex]
            if code in DISK_FULL | NOT_WRITABLE:
                where = getattr(x, "filename", None) or getattr(x, "path", None)
                if where is None and "lance" in str(x).lower():  # LanceDB names no file: its folder
                    where = str(_home() / "vectors")
                return code, where
    return None


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent): the
    longest mount point above it in /proc/self/mounts (bind mounts included), else the nearest
    parent ``os.path.ismount`` says is one."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    path = path.resolve()
    try:
        with open("/proc/self/mounts") as f:
            points = [Path(line.split()[1].replace("\\040", " ")) for line in f if len(line.split()) > 1]
        above = [p for p in points if path.is_relative_to(p)]
        if above:
            return max(above, key=lambda p: len(p.parts))
    except OSError:
        pass
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _free(path: Path) -> str:
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return "unknown"
    return f"{free / 2**20:.1f} MiB" if free < 2**30 else f"{free / 2**30:.1f} GiB"


def _inside(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
    except (TypeError, ValueError):
        return False


def _model_layout(path: Path) -> tuple[str, Path] | None:
    """(kind, version dir) when ``path`` lies under ``<home>/models/<kind>/<version>/``."""
    models = Path(os.path.abspath(_home() / "models"))
    path = Path(os.path.abspath(path))
    if not path.is_relative_to(models):
        return None
    parts = path.relative_to(models).parts
    return (parts[0], models / parts[0] / parts[1]) if len(parts) >= 2 else None


def _disk_message(code: int, file: str | None) -> str:
    home = _home()
    where = Path(file) if file else home
    what = f"{file}" if file else f"under the home {home}"
    if code in DISK_FULL:
        mount = mount_point(where)
        again = "run the command again"
        layout = _model_layout(where) if file else None
        if layout and (layout[1] / "ckpt" / "checkpoint.pt").is_file():
            again = f"continue the run with `atelier train {layout[0]} --resume --home {home}`"
        ours = file is not None and not _inside(where, home / "vectors")  # written by write_atomic or the lake's commit
        left = "The partial file was removed; what" if ours else "What"
        return (f"disk full while writing {what}: free space on {mount} ({_free(mount)} free now), then {again}. "
                f"{left} was written before is intact (`atelier doctor --home {home}` checks the home).")  # fmt: skip
    if code == errno.EROFS:
        return (f"cannot write {what}: {mount_point(where)} is a read-only file system. Choose a home on a writable "
                "disk (--home DIR or ATELIER_HOME).")  # fmt: skip
    if file is None or _inside(where, home):
        return (f"cannot write {what}: permission denied, the home {home} is read-only or not writable by this user. "
                "Fix its permissions or choose another home (--home DIR or ATELIER_HOME).")  # fmt: skip
    return f"cannot access {what}: permission denied. Fix its permissions, or run as a user who may read it."


def _parquet_message(e: BaseException) -> str | None:
    for x in causes(e):
        text = str(x)
        if not PARQUET_DAMAGE.search(text):
            continue
        m = QUOTED_FILE.search(text)
        first = text.strip().splitlines()[0] if text.strip() else type(x).__name__
        if m is None:
            return (f"a lake table is damaged ({first}): run `atelier doctor --home {_home()}` to find it, then "
                    "ingest its dataset again (`atelier ingest DATASET <release folder>`).")  # fmt: skip
        path = Path(m.group(1))
        parts = path.parts
        dataset = parts[parts.index("lake") + 1] if "lake" in parts[:-1] else "DATASET"
        if dataset == ".versions" and "lake" in parts:
            dataset = parts[parts.index("lake") + 2]
        return (f"lake table {path} is damaged ({first.split(':')[0]}): ingest the release again "
                f"(`atelier ingest {dataset} <release folder> --home {_home()}`), which rewrites every {dataset} table.")  # fmt: skip
    return None


def _model_file_message(e: BaseException) -> str:
    path, reason, fix = Path(e.path), e.reason, e.fix
    layout = _model_layout(path)
    if layout is not None:
        kind, version = layout
        if "ckpt" in path.parts[-2:-1]:
            fix = (f"delete {path.parent} and train again (the run starts over), or run `atelier doctor --fix --home "
                   f"{_home()}`, which removes unfinished runs whose checkpoint cannot be read")  # fmt: skip
        else:
            fix = f"train it again (`atelier train {kind} --home {_home()}`) or delete {version}"
    return f"{path}: {reason}; {fix}."


def explain(e: BaseException) -> str | None:
    """The message for an exception a user can cause, or None (a bug: show its traceback)."""
    if isinstance(e, (typer.TyperException, typer.Exit, typer.Abort)):  # usage errors, exits: typer's own
        return None
    disk = os_error(e)
    if disk is not None:
        return _disk_message(*disk)
    for x in causes(e):
        if _is(x, "ModelFileError", "models"):
            return _model_file_message(x)
        if _own(x) and _is(x, "DamagedTableError"):
            return str(x)
    parquet = _parquet_message(e)
    if parquet is not None:
        return parquet
    for x in causes(e):
        if _is(x, "SafetensorError"):
            return (f"a model file is damaged or incomplete ({str(x).splitlines()[0]}): run `atelier doctor --home "
                    f"{_home()}` to find it, then train that model again.")  # fmt: skip
        if _is(x, "UnpicklingError"):
            return ("a weights file is not one atelier can load safely (a pickle with code): export a state_dict with "
                    "`torch.save(model.state_dict(), PATH)` or safetensors.")  # fmt: skip
    if _own(e) or isinstance(e, (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)):
        return str(e) or type(e).__name__
    return None


# -- reporting -------------------------------------------------------------------------------


def report(e: BaseException, message: str | None = None) -> None:
    """Print ``message`` (default: explain(e), else str(e)) as an error; with --debug the traceback first."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    if debug_enabled() and e.__traceback__ is not None:
        sys.stderr.write("".join(traceback.format_exception(e)))
        sys.stderr.flush()
    message = message or explain(e) or str(e) or type(e).__name__
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)  # [brackets] escaped; no hard wrap in a path


class _NoTraceback(logging.Filter):
    """Drops the traceback of a log record (the console's copy) unless --debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not debug_enabled():
            record.exc_info, record.exc_text = None, None
        return True


def quiet_engine_tracebacks() -> None:
    """Prefect logs a failed task's or flow's traceback to the console, before the command's
    message: without --debug the console shows the log line without it (call once Prefect has
    set up its logging; its API log handler, which runs first, still sends the whole record)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


class AtelierGroup(TyperGroup):
    """The root `atelier` group: ``--debug`` is taken anywhere on the command line, and an
    exception :func:`explain` recognises ends the command with its message and exit code 1."""

    def main(self, args=None, *a, **kw):
        args = list(sys.argv[1:] if args is None else args)
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:  # `atelier train resnet --debug` as `atelier --debug train resnet`
            args.remove("--debug")
            args.insert(0, "--debug")
        return super().main(args, *a, **kw)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as e:
            message = explain(e)
            if message is None:
                raise
            report(e, message)
            raise typer.Exit(1) from None


__all__ = ["AtelierGroup", "DEBUG_ENV", "causes", "debug_enabled", "explain", "mount_point", "quiet_engine_tracebacks", "remember_home",
           "report", "state"]

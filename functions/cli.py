"""``tonematch serve | users | drop``: the service's commands (``engine.cli`` forwards them here).

* ``tonematch serve [--host --port --data-dir --database-url --s3-endpoint-url --bucket --workers]``
  runs the API, the web console, the local runner and the drop-folder watcher on one machine
  (SQLite + a data directory by default; PostgreSQL / S3 when their URLs are given).
* ``tonematch users add EMAIL --password P`` (or ``--password-stdin``) adds a user; ``users list``.
* ``tonematch drop EMAIL REFERENCE TARGET [--mode A|B] [--batch NAME]`` copies a pair into the user's
  drop folder of the data directory, which starts a job (when ``serve`` runs on the same data dir).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import IO, Any

from functions.settings import Settings


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=os.environ.get("TONEMATCH_DATA_DIR", "data"),
        help="data directory: SQLite database and local object store (default ./data)",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("TONEMATCH_DATABASE_URL"),
        help="postgresql://user:pass@host:5432/db (default: SQLite in the data dir)",
    )
    p.add_argument("--database-schema", default=os.environ.get("TONEMATCH_DATABASE_SCHEMA"))
    p.add_argument(
        "--bucket",
        default=os.environ.get("TONEMATCH_BUCKET"),
        help="S3 bucket for objects (default: the data dir)",
    )
    p.add_argument(
        "--s3-endpoint-url",
        default=os.environ.get("TONEMATCH_S3_ENDPOINT_URL"),
        help="S3-compatible endpoint, e.g. http://127.0.0.1:9000",
    )


def _settings(args: argparse.Namespace, **kw) -> Settings:
    base = Settings.from_env()
    return Settings(
        **{
            **base.__dict__,
            "data_dir": Path(args.data_dir),
            "database_url": args.database_url,
            "database_schema": args.database_schema,
            "bucket": args.bucket,
            "s3_endpoint_url": args.s3_endpoint_url,
            **kw,
        }
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tonematch", description="tonematch service commands")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the API, web console and local runner")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    s.add_argument(
        "--workers",
        type=int,
        default=os.environ.get("TONEMATCH_WORKERS"),
        help="render processes (default: TONEMATCH_WORKERS, else one per core)",
    )
    s.add_argument(
        "--public-url",
        default=os.environ.get("TONEMATCH_PUBLIC_URL"),
        help="base URL clients reach this server at "
        "(default: TONEMATCH_PUBLIC_URL, else http://HOST:PORT); signed local URLs point there",
    )
    s.add_argument("--no-drop-watch", action="store_true", help="do not watch the drop folder")
    s.add_argument("--log-level", default="info")
    _store_args(s)

    u = sub.add_parser("users", help="manage users")
    usub = u.add_subparsers(dest="users_command", required=True)
    ua = usub.add_parser("add", help="add a user (or reset their password)")
    ua.add_argument("email")
    g = ua.add_mutually_exclusive_group()
    g.add_argument("--password")
    g.add_argument("--password-stdin", action="store_true")
    ua.add_argument("--plan", default="free")
    _store_args(ua)
    ul = usub.add_parser("list", help="list users")
    _store_args(ul)

    d = sub.add_parser("drop", help="put a reference/target pair into a user's drop folder")
    d.add_argument("email")
    d.add_argument("reference")
    d.add_argument("target")
    d.add_argument("--mode", choices=("A", "B"), default="A")
    d.add_argument("--batch", default=None, help="batch folder name (default: a new id)")
    _store_args(d)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for usage / input errors)."""
    from engine.threads import single_blas_thread

    single_blas_thread()  # `python -m functions.cli serve` does not pass through engine.cli
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "users":
            return _users(args)
        return _drop(args)
    except (ValueError, OSError) as exc:
        print(f"tonematch: error: {exc}", file=sys.stderr)
        return 2


def _host_for_url(host: str) -> str:
    """The host a client on this machine reaches a server bound to ``host`` at."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _serve_settings(args: argparse.Namespace) -> Settings:
    """``tonematch serve``'s settings: ``--workers`` and ``--public-url`` (their defaults come from
    ``TONEMATCH_WORKERS`` / ``TONEMATCH_PUBLIC_URL``), else one render process per core and
    ``http://HOST:PORT``."""
    return _settings(
        args, workers=args.workers, public_url=args.public_url or f"http://{_host_for_url(args.host)}:{args.port}"
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from functions.api.app import create_app
    from functions.dropfolder import DropWatcher
    from functions.pipeline.context import context_from_settings

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host_for_url = _host_for_url(args.host)
    settings = _serve_settings(args)
    # one server per data dir, and the port bound before anything starts: a second `tonematch serve`
    # (or one on a taken port) used to resume and run the first one's jobs before failing to bind
    lock = _lock_data_dir(Path(settings.data_dir))
    try:
        sock = uvicorn.Config(None, host=args.host, port=args.port).bind_socket()
    except SystemExit:
        lock.close()
        raise OSError(f"cannot listen on {args.host}:{args.port} (the address is in use or not this "
                      "machine's); give another --port") from None
    ctx = context_from_settings(settings)
    app = create_app(ctx=ctx)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    watcher = None
    if not args.no_drop_watch:  # polls drop/ (local dir or bucket); on AWS S3 events do this
        watcher = DropWatcher(ctx)
        watcher.start()
    print(
        f"tonematch: serving on http://{host_for_url}:{args.port}/ (data: {ctx.settings.data_dir}, "
        f"database: {ctx.status.dialect}, objects: {type(ctx.objects).__name__})",
        flush=True,
    )
    try:
        _graceful_server(config).run(sockets=[sock])
    finally:
        if watcher:
            watcher.stop()
        sock.close()
        lock.close()
    return 0


def _graceful_server(config: Any) -> Any:
    """A uvicorn server for ``config`` that, stopped by SIGINT/SIGTERM, ends the process normally:
    uvicorn re-raises the signal after its shutdown, which kills the process before its exit handlers
    run (multiprocessing then reports the render pool's semaphores as leaked) and before ``_serve``
    releases its lock and stops the drop watcher."""
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                getattr(self, "_captured_signals", []).clear()

    return _Server(config)


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """An exclusive lock on ``data_dir/serve.lock`` held while the server runs (the returned file
    keeps it); OSError naming the holder's pid when another server holds it."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / "serve.lock", "a+")  # noqa: SIM115 -- held open for the server's life
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        who = f"pid {holder}" if holder.isdigit() else "its pid not recorded yet"
        raise OSError(f"{data_dir} is in use by another tonematch serve ({who}); stop it or give "
                      "another --data-dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _users(args: argparse.Namespace) -> int:
    from functions.api.auth import hash_password
    from functions.pipeline.context import context_from_settings

    ctx = context_from_settings(_settings(args))
    if args.users_command == "list":
        for row in ctx.status.query("SELECT id, email, plan, created_at FROM users ORDER BY created_at"):
            print(f"{row['id']}  {row['email']}  {row['plan']}  {row['created_at']}")
        return 0
    password = (
        sys.stdin.readline().rstrip("\n")
        if args.password_stdin
        else (args.password or os.environ.get("TONEMATCH_PASSWORD"))
    )
    if not password:
        raise ValueError("give --password, --password-stdin or TONEMATCH_PASSWORD")
    if "@" not in args.email:
        raise ValueError(f"{args.email!r} is not an email address")
    hashed = hash_password(password)
    existing = ctx.status.get_user_by_email(args.email)
    if existing:
        ctx.status.set_password(existing["id"], hashed)
        ctx.status.audit(existing["id"], "user.password", existing["id"], {"by": "cli"})
        print(f"{existing['id']}  {existing['email']}  (password updated)")
    else:
        user = ctx.status.create_user(args.email, hashed, args.plan)
        ctx.status.audit(user["id"], "user.add", user["id"], {"by": "cli"})
        print(f"{user['id']}  {user['email']}")
    return 0


def _drop(args: argparse.Namespace) -> int:
    from functions.pipeline.context import context_from_settings

    ctx = context_from_settings(_settings(args))
    user = ctx.status.get_user_by_email(args.email)
    if user is None:
        raise ValueError(f"no user {args.email!r} (add one with: tonematch users add)")
    batch = args.batch or uuid.uuid4().hex[:12]
    folder = f"drop/{user['id']}/{batch}"
    ref, tgt = Path(args.reference), Path(args.target)
    for p in (ref, tgt):
        if not p.is_file():
            raise ValueError(f"{p}: no such file")
    if ctx.objects.list(folder + "/"):  # its files belong to the batch's job: never overwritten
        raise ValueError(
            f"batch {batch!r} already exists in {args.email}'s drop folder ({folder}); give another --batch"
        )
    if args.mode != "A":
        import json

        ctx.objects.put_bytes(
            f"{folder}/manifest.json",
            json.dumps(
                {
                    "reference": f"reference{ref.suffix.lower()}",
                    "target": f"target{tgt.suffix.lower()}",
                    "mode": args.mode,
                }
            ).encode(),
        )
    ctx.objects.put_file(f"{folder}/reference{ref.suffix.lower()}", ref)
    ctx.objects.put_file(f"{folder}/target{tgt.suffix.lower()}", tgt)
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

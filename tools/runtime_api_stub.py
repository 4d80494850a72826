#!/usr/bin/env python3
"""A minimal AWS Lambda Runtime API on 127.0.0.1, for measuring a function's cold start.

Lambda starts `bootstrap` with AWS_LAMBDA_RUNTIME_API=<host:port>; once the function has
initialised it asks `GET /2018-06-01/runtime/invocation/next` for its first event. This
server records the monotonic time of that first request and never answers it, so the
process stays idle, waiting, as it does between invocations.

    runtime_api_stub.py serve
        print the address, then one line per /next request (for running a bootstrap by hand)

    runtime_api_stub.py measure --runs 20 --env KEY=VALUE ... --function NAME=ZIP ...
        for each function: extract `bootstrap` from its deployment zip (as Lambda does),
        start it --runs times against the stub, time spawn → first /next, read VmRSS from
        /proc/<pid>/status while it waits on /next, and print one markdown table.

Standard library only.
"""

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/2018-06-01/runtime"
MB = 1024 * 1024

# Budgets per function (x86_64).
ZIP_BUDGET_BYTES = 3 * MB
INIT_MEDIAN_BUDGET_MS = 6.0
RSS_BUDGET_KB = 30 * 1024


class RuntimeApiStub:
    """The Runtime API for one process at a time: `arm()` before each start."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next_seen = threading.Event()
        self._release = threading.Event()
        self.first_next_ns = None
        self.init_errors = []
        self.on_next = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                now = time.monotonic_ns()
                if self.path != f"{API}/invocation/next":
                    return self._reply(404, b'{"errorMessage":"not found"}')
                release = stub._record_next(now)
                # Keep the request open: the function stays idle waiting for an event.
                release.wait()
                self.close_connection = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == f"{API}/init/error":
                    with stub._lock:
                        stub.init_errors.append(body.decode("utf-8", "replace"))
                    return self._reply(202, b'{"status":"OK"}')
                if self.path.startswith(f"{API}/invocation/"):
                    return self._reply(202, b'{"status":"OK"}')
                return self._reply(404, b'{"errorMessage":"not found"}')

            def _reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

            def handle(self):
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = "%s:%d" % self.server.server_address
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def _record_next(self, now_ns):
        with self._lock:
            release = self._release
            first = self.first_next_ns is None
            if first:
                self.first_next_ns = now_ns
                self._next_seen.set()
        if self.on_next:
            self.on_next(now_ns, first)
        return release

    def arm(self):
        """Forget the previous process: release its held request, wait for a new first /next."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self._next_seen = threading.Event()
            self.first_next_ns = None
            self.init_errors = []

    def wait_for_next(self, timeout):
        return self._next_seen.wait(timeout)


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/{pid}/status")


def percentile(values, share):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def extract_bootstrap(zip_path, into):
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo("bootstrap")
        path = archive.extract(info, into)
    os.chmod(path, 0o755)
    return path, info.file_size


def lambda_env(name, address, extra):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": address,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDLAMBDABUDGETS",
        "AWS_SECRET_ACCESS_KEY": "lambda-budgets-secret",
        "AWS_SESSION_TOKEN": "lambda-budgets-token",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "lambda-budgets",
        "_HANDLER": "bootstrap",
    }
    env.update(extra)
    return env


def run_once(stub, bootstrap, env, cwd, log, timeout, settle):
    """One cold start: (init ms, VmRSS kB, VmHWM kB) or raises with the reason."""
    stub.arm()
    log.seek(0)
    log.truncate()
    start = time.monotonic_ns()
    proc = subprocess.Popen(
        [bootstrap], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + timeout
        while not stub.wait_for_next(0.01):
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before asking for an event")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no GET /invocation/next within {timeout:.0f} s")
        init_ms = (stub.first_next_ns - start) / 1e6
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} while waiting for an event")
        rss = proc_status_kb(proc.pid, "VmRSS")
        hwm = proc_status_kb(proc.pid, "VmHWM")
        return init_ms, rss, hwm
    except RuntimeError as error:
        log.flush()
        log.seek(0)
        output = log.read().decode("utf-8", "replace").strip()
        details = "; ".join(stub.init_errors + ([output[-2000:]] if output else []))
        raise RuntimeError(f"{error}{': ' + details if details else ''}") from None
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


def verdict(within):
    return "within" if within else "**OVER**"


def measure(args):
    extra = dict(kv.split("=", 1) for kv in args.env)
    functions = [spec.split("=", 1) for spec in args.function]
    rows, failures, over = [], [], []
    with tempfile.TemporaryDirectory(prefix="lambda-budgets-") as scratch, RuntimeApiStub() as stub:
        for name, zip_path in functions:
            task_root = os.path.join(scratch, name)
            bootstrap, bootstrap_bytes = extract_bootstrap(zip_path, task_root)
            zip_bytes = os.path.getsize(zip_path)
            env = lambda_env(name, stub.address, extra)
            env["LAMBDA_TASK_ROOT"] = task_root
            inits, rss, hwm = [], [], []
            with tempfile.TemporaryFile(dir=scratch) as log:
                try:
                    for _ in range(args.runs):
                        i, r, h = run_once(stub, bootstrap, env, task_root, log, args.timeout, args.settle)
                        inits.append(i)
                        rss.append(r)
                        hwm.append(h)
                except RuntimeError as error:
                    failures.append(f"{name}: {error}")
            zip_ok = zip_bytes <= ZIP_BUDGET_BYTES
            row = [
                name,
                f"{zip_bytes / MB:.2f} MiB {verdict(zip_ok)}",
                f"{bootstrap_bytes / MB:.2f} MiB",
            ]
            if not zip_ok:
                over.append(f"{name}: zip")
            if len(inits) == args.runs:
                median = statistics.median(inits)
                init_ok = median <= INIT_MEDIAN_BUDGET_MS
                rss_ok = max(rss) <= RSS_BUDGET_KB
                row += [
                    f"{median:.1f} ms {verdict(init_ok)}",
                    f"{percentile(inits, 0.95):.1f} ms",
                    f"{max(rss) / 1024:.1f} MiB {verdict(rss_ok)}",
                    f"{max(hwm) / 1024:.1f} MiB",
                ]
                over += [f"{name}: init"] * (not init_ok) + [f"{name}: RSS"] * (not rss_ok)
            else:
                row += ["failed"] * 4
            rows.append(row)

    print(
        f"| function | zip (≤ {ZIP_BUDGET_BYTES // MB} MiB) | bootstrap | "
        f"init median (≤ {INIT_MEDIAN_BUDGET_MS:.0f} ms) | init p95 | "
        f"RSS after init (≤ {RSS_BUDGET_KB // 1024} MiB) | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(
        f"{args.runs} cold starts per function; init = process spawn → first "
        "`GET /2018-06-01/runtime/invocation/next` on the local Runtime API stub; RSS = the "
        f"largest VmRSS over the runs, read {args.settle * 1000:.0f} ms after that request "
        "while the function waits on it (peak RSS: VmHWM); p95 is nearest-rank; "
        "MiB = 1,048,576 bytes."
    )
    for failure in failures:
        print(f"\nFAILED {failure}")
    if over:
        print("\nover budget: " + ", ".join(over))
    if failures:
        return 1
    return 1 if (over and args.strict) else 0


def serve(_args):
    with RuntimeApiStub() as stub:
        stub.on_next = lambda ns, _first: print(
            f"GET /invocation/next at monotonic {ns / 1e9:.6f} s (held open)", flush=True
        )
        print(f"AWS_LAMBDA_RUNTIME_API={stub.address}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the stub and print its address")
    m = commands.add_parser("measure", help="cold-start each function's bootstrap against the stub")
    m.add_argument("--runs", type=int, default=20)
    m.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the first /next")
    m.add_argument("--settle", type=float, default=0.1, help="seconds between /next and reading RSS")
    m.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    m.add_argument("--function", action="append", required=True, metavar="NAME=ZIP")
    m.add_argument("--strict", action="store_true", help="exit 1 when a budget is exceeded")
    args = parser.parse_args()
    return measure(args) if args.command == "measure" else serve(args)


if __name__ == "__main__":
    sys.exit(main())

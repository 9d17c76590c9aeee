#!/usr/bin/env python3
"""Self-test of the rollout smoke test (AnalysisTemplate flowable-ui-smoke).

Takes the shell script out of the rendered AnalysisTemplate, shellchecks it, and runs it
against two stand-in servers on 127.0.0.1: one that behaves as the HTTP contract says
(must pass) and one whose API answers anonymous callers with 200 (must fail).

    smoke_selftest.py RENDERED_PRODUCTION_YAML
Exit 0 on success, 1 on failure, 77 when curl or shellcheck is missing.
"""
from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading

import yaml

CONTRACT = {
    "/actuator/health/readiness": (200, "application/json", b'{"status":"UP"}'),
    "/actuator/health/liveness": (200, "application/json", b'{"status":"UP"}'),
    "/actuator/info": (200, "application/json", b'{"app":{"name":"flowable-ui"}}'),
    "/actuator/prometheus": (200, "application/openmetrics-text; version=1.0.0; charset=utf-8",
                             b"# EOF\n"),
}
PROBLEM = (401, "application/problem+json",
           b'{"type":"about:blank","title":"Unauthorized","status":401}')


def serve(routes: dict, api: tuple) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            status, ctype, body = routes.get(self.path) or (
                api if self.path.startswith("/api/") else (404, "text/plain", b"no"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    for tool in ("curl", "shellcheck", "sh"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not installed")
            return 77
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    template = next(d for d in docs if d["kind"] == "AnalysisTemplate"
                    and d["metadata"]["name"] == "flowable-ui-smoke")
    container = template["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c"], container["command"]
    script = container["args"][0]
    lint = subprocess.run(["shellcheck", "-s", "sh", "-"], input=script.replace("{{args.", "ARGS_").replace("}}", ""),
                          text=True, capture_output=True)
    if lint.returncode != 0:
        print(lint.stdout)
        return 1

    def run(server) -> int:
        host = f"127.0.0.1:{server.server_address[1]}"
        body = (script.replace("{{args.scheme}}", "http")
                .replace("{{args.service-name}}.{{args.namespace}}.svc", host))
        result = subprocess.run(["sh", "-c", body], text=True, capture_output=True, timeout=60)
        print(result.stdout.strip())
        return result.returncode

    good = serve(CONTRACT, PROBLEM)
    bad = serve(CONTRACT, (200, "application/json", b"[]"))
    try:
        if run(good) != 0:
            print("FAIL: the smoke test rejects a service that follows the contract")
            return 1
        if run(bad) == 0:
            print("FAIL: the smoke test accepts an API that lets anonymous callers in")
            return 1
    finally:
        good.shutdown()
        bad.shutdown()
    print("ok: smoke test passes the contract and catches an open API")
    return 0


if __name__ == "__main__":
    sys.exit(main())

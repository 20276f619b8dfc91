"""`python -m jobfleet_tools.local.lambda_invoke <module.function>`: one Lambda invocation, locally.

Reads the event (JSON) on stdin, calls the handler in this fresh process, whose environment is the
function's (as Lambda gives it), and prints the handler's response as the last stdout line. The
handler's logs go to stderr. Exit code 0 when the handler returned, 1 when it raised (Lambda
reports a function error: the event source mapping then retries the whole batch).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback


def main(argv: list[str]) -> int:
    module_name, _, function_name = argv[0].rpartition(".")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    event = json.load(sys.stdin)
    try:
        response = getattr(importlib.import_module(module_name), function_name)(event, None)
    except Exception:
        traceback.print_exc()
        return 1
    print(json.dumps(response), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""`python -m jobfleet_tools.capacity simulate|cost ...`."""

import sys

from .cli import COMMANDS, EXIT_USAGE

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m jobfleet_tools.capacity {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))

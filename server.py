"""Start the executor's HTTP API; it takes the options of `cyanprint-executor serve`."""

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))

"""Start the CyanPrint executor's HTTP API; options as for `cyanprint-executor serve`."""

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))

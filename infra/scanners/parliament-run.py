"""parliament's CLI, with its ignore_locations working.

parliament 1.6.4 reads ignore_locations from --config but never matches
them: cli.is_finding_filtered passes each value through misc.make_list, which
only knows jsoncfg nodes and returns [] for the plain lists and strings of a
YAML file. This replaces make_list in the CLI with one that keeps a list and
wraps a string; everything else is parliament's own code and semantics (each
listed value is a regex, full-matched case-insensitively against the
finding's location). Run it with the scanner venv's python:

  ~/.cache/alert-manager/scanners/bin/python3 infra/scanners/parliament-run.py \
    --config infra/scanners/parliament.yaml --directory DIR --json
"""

import sys

import parliament.cli as cli


def make_list(value):
    return value if isinstance(value, list) else [value]


cli.make_list = make_list

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv))

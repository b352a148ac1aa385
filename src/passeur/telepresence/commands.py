"""`passeur staff-password`: hash a staff password for config/passeur.yaml."""

from __future__ import annotations

import argparse
import sys

from passeur.telepresence.exceptions import TelepresenceError


def _cmd_staff_password(args: argparse.Namespace) -> int:
    from getpass import getpass

    from passeur.telepresence.access import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass("Staff password: ")
        if getpass("Again: ") != password:
            raise TelepresenceError("the two passwords differ; nothing was printed")
    if len(password) < 8:
        raise TelepresenceError("choose a staff password of at least 8 characters")
    print(hash_password(password))
    print("# paste the line above as `staff_password_hash` under /**/telepresence "
          "in your parameter file", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "staff-password",
        help="hash a staff password (prints the value of telepresence's staff_password_hash)")
    p.add_argument("--stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=_cmd_staff_password)

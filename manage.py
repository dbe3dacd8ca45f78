#!/usr/bin/env python
"""Django's command-line utility for administrative tasks. Bad configuration is reported before any command runs:
every problem at once, without a traceback (config/startup.py)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    settings_module = _settings_option(sys.argv[2:])
    if settings_module:  # Django reads --settings itself too; validation must load the same module
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.core.management import execute_from_command_line

    from config.startup import exit_if_misconfigured

    # Commands run Django's system checks themselves (check, migrate, runserver...); the settings are checked here.
    exit_if_misconfigured(system_checks=False)
    execute_from_command_line(sys.argv)


def _settings_option(args: list[str]) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith("--settings="):
            return arg.partition("=")[2]
        if arg == "--settings" and index + 1 < len(args):
            return args[index + 1]
    return None


if __name__ == "__main__":
    main()

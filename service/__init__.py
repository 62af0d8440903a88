"""The ekko application: config, database, entity registry, services, sync and CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ekko")  # the installed package's, so health, metrics and `ekko --version` agree
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

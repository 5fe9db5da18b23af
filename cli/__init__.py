"""Command line `arsample`."""


def main(argv=None) -> int:
    from .main import main as _main

    return _main(argv)

"""The base of the benches (``BENCHES``): ``tools/bench.py NAME ...`` builds the named one,
lets it add its arguments to the parser and runs it with the parsed arguments."""
import argparse


class Bench:
    """A benchmark run by ``tools/bench.py``: its class docstring's first line is its
    description (``tools/bench.py --list``)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add the bench's arguments to ``p``.

        Args:
            p (argparse.ArgumentParser): the parser of ``tools/bench.py NAME``.
        """

    def run(self, args: argparse.Namespace) -> None:
        """Run the bench and print its table(s).

        Args:
            args (argparse.Namespace): the parsed arguments.
        """
        raise NotImplementedError

    @classmethod
    def description(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or '').strip().splitlines()[0]

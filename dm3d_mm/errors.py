"""The errors that mean a mistake in what the user gave (a file, a config key, a value, a
budget), as opposed to a bug.

Every check of user input in dm3d_mm raises one of these; the tools
(:func:`dm3d_mm.apis.cli.run_cli`) print such an error as one line and exit 2, and show the
full traceback of anything else. Each also derives from the builtin class a caller would
expect (``ValueError``; ``FileNotFoundError`` for a missing file, ...), so ``except
ValueError`` keeps working.
"""


class UserError(ValueError):
    """A mistake in the user's input: a value out of range, an unknown key or type, a model
    or config that does not fit what was asked. Its message says what to change."""


class MissingFile(UserError, FileNotFoundError):
    """A file the user named does not exist."""


class WouldOverwrite(UserError, FileExistsError):
    """An output would overwrite the user's input (a checkpoint, a result)."""


class MissingKey(UserError, KeyError):
    """A key the user's config or input needs is absent, or names nothing."""

    def __str__(self) -> str:  # the message, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ''


class UnfitModel(UserError, TypeError):
    """The model (or optimizer) the config builds is of a type the asked-for operation does
    not support."""


class BudgetBelowFloor(UserError):
    """The budget is below what the selected layers can reach (the unpruned layers' cost
    plus every pruned layer at its lowest allowed density)."""


class OverBudget(UserError):
    """No pruned model, counted afresh as it will run, fits the budget (a spatial model's
    kept sites follow the pruned weights, a measured time misses the prediction); the
    closest model is kept only when asked for (``allow_over_budget``)."""

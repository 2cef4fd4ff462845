"""One error type for every bad input, so front ends can print one clear line instead of a traceback."""


class ReachlsError(Exception):
    """A problem with the user's input (file, build dir, script, toolchain), stated in one line."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

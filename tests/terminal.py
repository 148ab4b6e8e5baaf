"""A stand-in for stderr that says it is a terminal: tqdm draws its bars only on one by default."""


class Terminal:
    """What was written to it, in ``parts``; ``isatty()`` is true."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    def text(self) -> str:
        return "".join(self.parts)

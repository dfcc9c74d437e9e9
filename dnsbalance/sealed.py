"""Objects of a serving snapshot: each attribute is set once, when the object is made, and never again. What
does change while a snapshot serves is in its caches, named as such (prepared replies, locations, answer
sets), which fill but never change a meaning."""
from __future__ import annotations


class Sealed:
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        try:
            object.__getattribute__(self, name)
        except AttributeError:
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"{type(self).__name__}.{name} is set once: a snapshot never changes")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} is set once: a snapshot never changes")

"""``SongSpace``: what the blend and :class:`pmrs.Recommender` read of a bundle.

Three things answer it: a :class:`~pmrs.serving.bundle.Bundle`, a live view of a bundle with the
write log's plays and songs on top (:class:`pmrs.live.view.LiveView`) and a bundle whose next
searches were batched beforehand (``pmrs.serving.default_lists``). The two wrappers derive from
:class:`Forwarding`, which passes on exactly the members named here, each by name: a method added
to ``Bundle`` is not reachable through a wrapper until it joins this Protocol, and
``tests/test_song_space.py`` holds every wrapper to a decision on each member (answered
itself, or listed as the bundle's own).

Rows: a user's row indexes the users, a song's row the song universe (``Bundle.song_ids``; a live
view appends songs and users after the bundle's). Vectors are float32.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class SongSpace(Protocol):
    """The questions the blend asks (``pmrs.serving.recommend``) and the answers it needs."""

    # what the bundle is
    @property
    def version(self) -> str: ...
    @property
    def sources(self) -> Mapping[str, object]: ...          # name -> SourceSpec, bundle order
    @property
    def source_names(self) -> list[str]: ...
    @property
    def defaults(self): ...                                 # contract.Defaults
    @property
    def genres(self) -> list[str]: ...                      # the genre head's classes
    @property
    def genre_warning(self) -> str: ...                     # "" or why its guesses are unreliable
    @property
    def acoustic_warning(self) -> str: ...                  # "" or why the CNN's vectors are unreliable
    @property
    def stand_in_sources(self) -> list[str]: ...
    def has_source(self, name: str) -> bool: ...
    def source_size(self, name: str) -> int: ...

    # users
    @property
    def n_users(self) -> int: ...
    def user_row(self, user_id: str | bytes) -> int | None: ...
    def user_vector(self, row: int) -> np.ndarray: ...      # (f,)
    def played(self, user_row: int) -> np.ndarray: ...      # sorted song rows, int
    def play_counts(self, user_row: int) -> np.ndarray: ...  # aligned with played

    # songs
    @property
    def n_songs(self) -> int: ...
    def song_row(self, song_id: str | bytes) -> int | None: ...
    def song_rows(self, song_ids: Iterable[str | bytes]) -> np.ndarray: ...   # -1: unknown
    def song_id(self, row: int) -> str: ...
    def songs(self, rows: Sequence[int] | np.ndarray, copy: bool = True) -> list[dict]: ...
    def song_sources(self, song_row: int) -> list[str]: ...
    def song_tags(self, song_row: int) -> dict[str, float]: ...               # Last.fm tag -> weight
    def covers(self, name: str, song_rows) -> np.ndarray: ...                 # (n,) bool
    def song_vector(self, name: str, song_row: int) -> np.ndarray | None: ...
    def song_vectors(self, name: str, song_rows) -> tuple[np.ndarray, np.ndarray]: ...
    def profile(self, name: str, song_rows) -> np.ndarray | None: ...
    def embedding(self, song_rows) -> np.ndarray: ...                          # (n, e), L2-normalised
    def genre_probs(self, song_row: int) -> np.ndarray | None: ...
    def genre_probs_many(self, song_rows) -> tuple[np.ndarray, np.ndarray]: ...

    # searches and fold-in
    def search(self, name: str, queries: np.ndarray, top: int, kind: str = ...
               ) -> tuple[np.ndarray, np.ndarray]: ...                      # kind: contract.USER_QUERIES, ...
    def search_songs(self, name: str, song_rows, top: int) -> tuple[np.ndarray, np.ndarray]: ...
    def search_each(self, name: str, queries: np.ndarray, top: int, kind: str = ...
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...
    def fold_in(self, song_rows, counts=None, extra=None) -> np.ndarray: ...   # (f,)
    def fold_in_terms(self, target: np.ndarray, song_rows, counts=None, extra=None
                      ) -> tuple[np.ndarray, np.ndarray]: ...   # why a WMF-space score is what it is
    def similarity(self, name: str, from_rows, to_rows) -> np.ndarray: ...      # a neighbours source's S[j, i], (to, from)


def members(protocol: type = SongSpace) -> tuple[str, ...]:
    """The names a Protocol declares (its methods and properties), sorted."""
    skip = {"__init__", "__subclasshook__", "__abstractmethods__", "__protocol_attrs__",
            "__non_callable_proto_members__"}
    return tuple(sorted(n for n in vars(protocol) if not n.startswith("_") and n not in skip))


MEMBERS = members()


class Forwarding:
    """A :class:`SongSpace` over another one (``inner``): every member the subclass does not
    answer itself is the inner space's, and nothing else is reachable."""

    def __init__(self, inner: SongSpace):
        self._inner = inner

    @property
    def inner(self) -> SongSpace:
        return self._inner


def _forward(name: str):
    attr = getattr(SongSpace, name)
    if isinstance(attr, property):
        return property(lambda self: getattr(self._inner, name), doc=f"The inner space's ``{name}``.")

    def call(self, *args, **kwargs):
        return getattr(self._inner, name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"The inner space's ``{name}``."
    return call


for _name in MEMBERS:
    setattr(Forwarding, _name, _forward(_name))
del _name

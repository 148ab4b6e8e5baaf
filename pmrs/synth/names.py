"""Deterministic made-up artist names, song titles and release names for the synthetic world."""

from __future__ import annotations

import numpy as np

_ADJ = ("Silver Velvet Broken Electric Golden Midnight Crimson Hollow Neon Quiet Wild Lonely Frozen "
        "Burning Paper Glass Iron Lucky Distant Northern Secret Faded Rusty Sunday Blue").split()
_NOUN = ("Rivers Engines Sparrows Lanterns Echoes Wolves Satellites Harbors Ghosts Machines Tides "
         "Mirrors Horses Comets Gardens Shadows Anchors Signals Foxes Thieves Parades Orchards").split()
_WORD = ("love night road heart fire rain city dream light summer home time river sky stone song "
         "dance gold ocean train shadow morning wire coast fever window garden storm echo sugar").split()
_FIRST = ("Ada Ben Cleo Dev Eli Faye Gus Hana Ivo Juno Kai Lena Milo Nia Otto Pia Remy Sage Tomas "
          "Uma Vic Wren Yara Zeno").split()
_LAST = ("Moreau Okafor Lindqvist Tanaka Alvarez Novak Brennan Castillo Dubois Haddad Ivanova "
         "Kowalski Mbeki Nakamura Ortega Petrov Quinn Rossi Santos Varga").split()


def artist_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct artist names."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        if rng.random() < 0.5:
            name = f"The {_ADJ[rng.integers(len(_ADJ))]} {_NOUN[rng.integers(len(_NOUN))]}"
        else:
            name = f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}"
        if name in seen:
            name = f"{name} {len(names)}"
        seen.add(name)
        names.append(name)
    return names


def titles(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` song titles of one to three words (repeats allowed, as in real catalogs)."""
    words = np.array(_WORD)
    lengths = rng.integers(1, 4, size=n)
    picks = rng.integers(0, len(words), size=(n, 3))
    return [" ".join(w.capitalize() for w in words[picks[i, : lengths[i]]]) for i in range(n)]

"""``pmrs-client``: query a PMRS server from the command line.

A thin layer over the remote recommender (:func:`pmrs.connect`): it parses arguments, makes one
call, and prints the answer as an aligned table (or JSON with ``--json``). A failed call prints
one line, ``pmrs-client: CODE: message`` (the error's gRPC status and the server's message), to
stderr and exits 1; a usage error exits 2.

Examples
--------
``pmrs-client recommend b80344d063b5ccb3212f76538f3d9e43d87dca9e -k 20 --diversity 0.3``
``pmrs-client recommend --seed SOAKIMP12A8C130995 SOBBMDR12A8C13253B``
``pmrs-client similar SOAKIMP12A8C130995 --mode acoustic``
``pmrs-client radio --song SOAKIMP12A8C130995 -k 8``, then ``pmrs-client radio --token TOKEN --skip SONG_ID``
``pmrs-client --json info``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pmrs
from pmrs.entry import run_cli
from pmrs.live.feedback import ACTIONS
from pmrs.results import BundleInfo, History, ScoredSong, Song
from pmrs.serving.radio import SESSION_ACTIONS

__all__ = ["build_parser", "connection_args", "format_info", "format_song", "format_songs", "main",
           "read_token"]

_MAX_TEXT = 40  # characters shown of a title or artist in a table


def _clip(text: str, width: int = _MAX_TEXT) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


class CallFailed(Exception):
    """A call the server (or the channel) answered with an error: ``CODE: message``."""


def format_songs(songs: Sequence[ScoredSong]) -> str:
    """Songs as an aligned table: rank, title, artist, genre, year, score, sources, song id."""
    if not songs:
        return "(no songs)"
    header = ["rank", "title", "artist", "genre", "year", "score", "sources", "song id"]
    rows = [[str(i), _clip(s.title) or "-", _clip(s.artist) or "-", s.genre or "-",
             str(s.year) if s.year else "-", f"{s.score:#.4g}", "+".join(s.sources) or "-", s.song_id]
            for i, s in enumerate(songs, 1)]
    return _table(header, rows, right={0, 4, 5})


def format_reasons(songs: Sequence[ScoredSong]) -> str:
    """Each song's reasons (``--explain``), under the table: ``rank. title`` then one line per
    source (``source #rank in it, share``: the sentence); ``""`` when no song has any."""
    if not any(s.reasons for s in songs):
        return ""
    out = ["", "why:"]
    for i, s in enumerate(songs, 1):
        out.append(f"{i:>4}. {_clip(s.title) or s.song_id}")
        out += [f"        {r.source} #{r.rank} (share {r.share:.2f}): {r.text}" for r in s.reasons]
    return "\n".join(out)


def format_history(h: History) -> str:
    """A user's history: the most played songs, then feedback and top artists and genres."""
    out = [f"user {h.user_id}: {h.played_songs:,} songs played; most played:"]
    out += [f"{s.plays:>6}  {_clip(s.title) or s.song_id}  ({s.artist or '-'}, {s.genre or '-'})" for s in h.songs]
    for label, songs in (("liked", h.liked), ("disliked", h.disliked), ("skipped", h.skipped)):
        if songs:
            out.append(f"{label}: " + "; ".join(f"{_clip(s.title) or s.song_id} ({s.artist or '-'})" for s in songs))
    if h.hidden_artists:
        out.append("artists hidden: " + "; ".join(h.hidden_artists))
    for label, counts in (("top artists", h.top_artists), ("top genres", h.top_genres)):
        if counts:
            out.append(f"{label}: " + ", ".join(f"{c.name} ({c.plays:,})" for c in counts))
    return "\n".join(out)


def format_song(song: Song) -> str:
    """One song's catalog entry as aligned ``field  value`` lines, then a ``warning:`` line for
    each part of the acoustic model that learned from too little (``Song.genre_warning``,
    ``Song.acoustic_warning``)."""
    fields = [("song id", song.song_id), ("title", song.title or "-"),
              ("artist", song.artist or "-"), ("release", song.release or "-"),
              ("year", str(song.year) if song.year else "-"), ("genre", song.genre or "-"),
              ("has plays", "yes" if song.has_plays else "no"),
              ("has audio", "yes" if song.has_audio else "no")]
    if song.genre_scores:
        fields.append(("genre scores", ", ".join(f"{g.genre} {g.confidence:.2f}"
                                                 for g in song.genre_scores)))
    if song.tags:
        fields.append(("tags", ", ".join(f"{t} ({w:g})" for t, w in song.tags)))
    w = max(len(k) for k, _ in fields)
    warnings = [f"warning: {why}" for why in (song.genre_warning, song.acoustic_warning) if why]
    return "\n".join([f"{k.ljust(w)}  {v}" for k, v in fields] + warnings)


def format_info(info: BundleInfo) -> str:
    """The served bundle: counts, source runs, then a table of its indexes."""
    fields = [("bundle", info.version), ("created", info.created_at or "-"),
              ("users", f"{info.users:,}"), ("songs", f"{info.songs:,}"),
              ("with plays", f"{info.songs_with_plays:,}"),
              ("with audio", f"{info.songs_with_audio:,}")]
    fields += [(f"{name} run", run) for name, run in sorted(info.source_runs.items())]
    fields += [(f"{d.kind} lists", f"precomputed for k={d.k}, shares "
                f"{' '.join(f'{name}={share:g}' for name, share in d.shares.items()) or '-'}, "
                f"diversity={d.diversity:g}") for d in info.default_lists]
    w = max(len(k) for k, _ in fields)
    lines = [f"{k.ljust(w)}  {v}" for k, v in fields]
    if info.sources:
        rows = [[i.name, i.spec, f"{i.vectors:,}", str(i.dimension),
                 ", ".join(f"{k}={v}" for k, v in sorted(i.search_params.items())) or "-",
                 f"{i.recall_at_10:.3f}", f"{i.default_share:.2f}", "yes" if i.covers_cold else "no"]
                for i in info.sources]
        lines += ["", _table(["source", "spec", "vectors", "dim", "search", "recall@10", "share", "cold songs"],
                             rows, right={2, 3, 5, 6})]
    return "\n".join(lines)


def _common(p: argparse.ArgumentParser, top: bool) -> None:
    # On subcommands the defaults are SUPPRESSed so that a flag given before the command
    # (pmrs-client --json info) is not overwritten by the subcommand's default.
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    p.add_argument("--target", default=d("127.0.0.1:50051"),
                   help="server HOST:PORT, or replicas IP:PORT,IP:PORT,... balanced round robin "
                        "(default: 127.0.0.1:50051)")
    p.add_argument("--timeout", type=float, default=d(5.0),
                   help="deadline per call in seconds (default: 5)")
    p.add_argument("--retries", type=int, default=d(3),
                   help="retries on UNAVAILABLE, 0 to 4 (default: 3)")
    p.add_argument("--json", action="store_true", default=d(False), help="print JSON")
    connection_args(p, d)


def connection_args(p: argparse.ArgumentParser, d=lambda v: v) -> None:
    """The token and TLS flags of every command-line client (``d`` wraps each default)."""
    p.add_argument("--token-file", default=d(None), metavar="FILE",
                   help="file holding the bearer token (default: $PMRS_TOKEN); writes need the write token")
    p.add_argument("--tls", action="store_true", default=d(False), help="connect with TLS")
    p.add_argument("--ca-file", default=d(None), metavar="PEM",
                   help="root certificates to trust (a private CA or a self-signed server; implies --tls)")
    p.add_argument("--cert-file", default=d(None), metavar="PEM", help="client certificate (mutual TLS)")
    p.add_argument("--key-file", default=d(None), metavar="PEM", help="client certificate's key")


def read_token(path: str | None) -> str | None:
    """The token in the file ``--token-file`` names (None without one: ``$PMRS_TOKEN`` applies)."""
    return Path(path).read_text(encoding="utf-8").strip() if path else None


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--explain", action="store_true",
                   help="say why each song is there: one reason per source that placed it, with evidence")
    p.add_argument("--acoustic-share", type=float, metavar="F",
                   help="share of the list from the acoustic source, 0 to 1")
    p.add_argument("--share", nargs="+", action="extend", default=[], metavar="SOURCE=F",
                   help="a source's share of the list, e.g. --share metadata=0.3 (sources: info)")
    p.add_argument("--diversity", type=float, metavar="F",
                   help="diversity weight of the re-ranking, 0 to 1")
    p.add_argument("--genre", nargs="+", action="extend", default=[], metavar="G",
                   help="keep only these genres")
    p.add_argument("--min-year", type=int, default=0, help="keep songs from this year on")
    p.add_argument("--max-year", type=int, default=0, help="keep songs up to this year")
    p.add_argument("--exclude-artist", nargs="+", action="extend", default=[], metavar="A",
                   help="drop songs by these artists")


def _listener(p: argparse.ArgumentParser, k: int, what: str) -> None:
    """A known user, or seed songs for one the model does not know, and ``-k``."""
    p.add_argument("user_id", nargs="?", default="", metavar="USER_ID",
                   help="a known user; omit for an unknown user described by --seed")
    p.add_argument("-k", type=int, default=k, help=f"{what} (default: {k})")
    p.add_argument("--seed", nargs="+", action="extend", default=[], metavar="SONG_ID",
                   help="songs an unknown user likes (folded in)")


def build_parser() -> argparse.ArgumentParser:
    """The ``pmrs-client`` argument parser."""
    parser = argparse.ArgumentParser(prog="pmrs-client",
                                     description="Query a PMRS recommendation server.")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("recommend", help="songs for a user (or for seed songs)")
    _common(p, top=False)
    _listener(p, 10, "number of songs")
    p.add_argument("--include-played", action="store_true", help="also return played songs")
    _filters(p)

    p = sub.add_parser("similar", help="songs similar to a song")
    _common(p, top=False)
    p.add_argument("song_id", metavar="SONG_ID")
    p.add_argument("-k", type=int, default=10, help="number of songs (default: 10)")
    p.add_argument("--mode", default="mixed", metavar="mixed|SOURCE",
                   help="similarity by one source (collaborative, acoustic, ...; see info) or by every "
                        "source blended (default: mixed)")
    _filters(p)

    p = sub.add_parser("genres", help="songs for a user (or seed songs) under each genre, with confidences")
    _common(p, top=False)
    _listener(p, 5, "songs per genre")
    p.add_argument("--genre", nargs="+", action="extend", default=[], metavar="G",
                   help="only these genres")

    p = sub.add_parser("radio", help="the next songs of a radio from a song, an artist, seed songs or a user; "
                                     "continue it with --token")
    _common(p, top=False)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--song", metavar="SONG_ID", help="start from this song")
    start.add_argument("--artist", metavar="NAME", help="start from this artist's songs")
    start.add_argument("--seed", nargs="+", action="extend", default=[], metavar="SONG_ID", help="start from these songs")
    p.add_argument("--user", metavar="USER_ID", help="the listener (alone: start from their most played songs)")
    p.add_argument("--token", help="continue the radio whose last answer printed this token")
    p.add_argument("-k", type=int, default=10, help="number of songs (default: 10)")
    p.add_argument("--artist-gap", type=int, metavar="N", help="songs of other artists between two of one artist")
    p.add_argument("--diversity", type=float, metavar="F", help="how far the radio wanders from its start, 0 to 1")
    for action in SESSION_ACTIONS:
        p.add_argument(f"--{action}", nargs="+", action="extend", default=[], metavar="SONG_ID",
                       help=f"songs the listener chose to {action} since the last answer (steers what comes next)")
    p.add_argument("--explain", action="store_true", help="say why each song is there")

    p = sub.add_parser("song", help="one song's catalog entry")
    _common(p, top=False)
    p.add_argument("song_id", metavar="SONG_ID")

    p = sub.add_parser("history", help="what the server knows of a user: plays, feedback, top artists and genres")
    _common(p, top=False)
    p.add_argument("user_id", metavar="USER_ID")
    p.add_argument("--limit", type=int, default=20, help="most played songs shown (default 20)")

    p = sub.add_parser("info", help="the bundle the server is serving")
    _common(p, top=False)

    p = sub.add_parser("play", help="record plays of a user (a write: needs the write token)")
    _common(p, top=False)
    p.add_argument("user_id", metavar="USER_ID")
    p.add_argument("plays", nargs="+", metavar="SONG_ID[=COUNT]", help="songs played (count 1 unless given)")
    p.add_argument("--request-id", help="retrying with the same id applies the plays once")

    p = sub.add_parser("feedback", help="what a user thinks of a song: like, skip, dislike, hide_artist "
                                        "(a write: needs the write token)")
    _common(p, top=False)
    p.add_argument("user_id", metavar="USER_ID")
    p.add_argument("song_id", metavar="SONG_ID")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--request-id", help="retrying with the same id applies it once")

    p = sub.add_parser("add-song", help="add a song nobody has heard (a write: needs the write token)")
    _common(p, top=False)
    p.add_argument("song_id", metavar="SONG_ID")
    p.add_argument("--audio", metavar="FILE", help="its audio clip (any format `pmrs extract` reads)")
    for name in ("title", "artist", "release", "genre"):
        p.add_argument(f"--{name}", default="")
    p.add_argument("--year", type=int, default=0)
    p.add_argument("--tag", nargs="+", action="extend", default=[], metavar="TAG", help="tags")
    p.add_argument("--request-id", help="retrying with the same id adds the song once and answers like the "
                   "first call (default: a new id, reused by the client's own retries)")
    return parser


def _plays(items: Sequence[str]) -> list[tuple[str, int]]:
    out = []
    for item in items:
        song, sep, count = item.partition("=")
        try:
            out.append((song.strip(), int(count) if sep else 1))
        except ValueError:
            raise ValueError(f"plays are SONG_ID or SONG_ID=COUNT, got {item!r}") from None
    return out


def _shares(items: Sequence[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--share takes SOURCE=FRACTION, got {item!r}")
    return out


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The shares, diversity and filters of a ``recommend`` or ``similar`` command."""
    shares = _shares(args.share)
    if args.acoustic_share is not None:   # (the older flag: the acoustic source's share)
        if "acoustic" in shares:
            raise ValueError("give --acoustic-share or --share acoustic=F, not both")
        shares["acoustic"] = args.acoustic_share
    filters = pmrs.Filters(genres=tuple(args.genre), min_year=args.min_year, max_year=args.max_year,
                           exclude_artists=tuple(args.exclude_artist))
    return {"shares": shares or None, "diversity": args.diversity, "filters": filters, "explain": args.explain}


def _run(rec, args: argparse.Namespace) -> tuple[str, Any]:
    """Make the call on ``rec`` (a :class:`pmrs.Recommender` or the remote one); returns (text,
    JSON-able object)."""
    if args.command == "recommend":
        recs = rec.recommend(args.user_id or None, args.seed, k=args.k, include_played=args.include_played,
                             **_settings(args))
        head = f"bundle {recs.bundle_version or '-'}"
        if recs.folded_in:
            head += f"  (unknown user folded in from {len(args.seed)} seed songs)"
        return f"{head}\n{format_songs(recs.songs)}{format_reasons(recs.songs)}", dataclasses.asdict(recs)
    if args.command == "similar":
        recs = rec.similar_songs(args.song_id, k=args.k, mode=args.mode, **_settings(args))
        return format_songs(recs.songs) + format_reasons(recs.songs), dataclasses.asdict(recs)
    if args.command == "radio":
        session = [(song, action) for action in SESSION_ACTIONS for song in getattr(args, action)]
        got = rec.radio(args.song, args.artist, args.seed, args.user, k=args.k, token=args.token,
                        artist_gap=args.artist_gap, diversity=args.diversity, session=session, explain=args.explain)
        note = "\n(the artist gap was relaxed: too few artists among the candidates)" if got.relaxed else ""
        text = f"{format_songs(got.songs)}{format_reasons(got.songs)}{note}\ntoken: {got.token}"
        return text, dataclasses.asdict(got)
    if args.command == "genres":
        by_genre = rec.recommend_by_genre(args.user_id or None, args.seed, k=args.k, genres=args.genre)
        text = "\n\n".join(f"{g.genre}  (confidence {g.confidence:.2f})\n{format_songs(g.songs)}"
                            for g in by_genre.genres)
        return text or "(no songs)", dataclasses.asdict(by_genre)
    if args.command == "history":
        h = rec.history(args.user_id, limit=args.limit)
        return format_history(h), dataclasses.asdict(h)
    if args.command == "play":
        done = rec.record_plays(args.user_id, _plays(args.plays), request_id=args.request_id)
        note = " (a retry: recorded before)" if done.duplicate else ""
        return f"recorded as write {done.seq}{note}", dataclasses.asdict(done)
    if args.command == "feedback":
        done = rec.record_feedback(args.user_id, args.song_id, args.action, request_id=args.request_id)
        note = " (a retry: recorded before)" if done.duplicate else ""
        return f"{args.action} recorded as write {done.seq}{note}", dataclasses.asdict(done)
    if args.command == "add-song":
        clip = Path(args.audio) if args.audio else None
        added = rec.add_song(args.song_id, title=args.title, artist=args.artist, release=args.release,
                             year=args.year, genre=args.genre, tags=args.tag,
                             audio=clip.read_bytes() if clip else None, filename=clip.name if clip else "clip",
                             request_id=args.request_id)
        return format_song(added.song), dataclasses.asdict(added)
    if args.command == "song":
        song = rec.song(args.song_id)
        return format_song(song), dataclasses.asdict(song)
    info = rec.info()
    return format_info(info), dataclasses.asdict(info)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pmrs-client``; returns the exit code (0 ok, 1 failed call, 2 usage)."""
    def command(args: argparse.Namespace) -> int:
        # (settings a channel cannot take, e.g. --retries 9, are usage errors: InvalidArgument is a ValueError)
        rec = pmrs.connect(args.target, timeout=args.timeout, retries=args.retries, tls=args.tls,
                           token=read_token(args.token_file), ca_file=args.ca_file, cert_file=args.cert_file,
                           key_file=args.key_file)
        with rec:
            try:
                text, obj = _run(rec, args)
            except pmrs.PMRSError as exc:
                raise CallFailed(f"{exc.code}: {exc}") from None
        print(json.dumps(obj, indent=2, ensure_ascii=False) if args.json else text)
        return 0

    return run_cli("pmrs-client", build_parser(), command, argv, failures=(CallFailed,))


if __name__ == "__main__":
    sys.exit(main())

"""Plain-text and Markdown renderings of reports (the command line prints these)."""

from __future__ import annotations

from typing import Iterable, Sequence


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def format_ingest(report: dict) -> str:
    out: list[str] = []
    t = report.get("triplets")
    if t:
        out += [f"triplets: {t['path']}",
                f"  lines {t['lines']:,}  good {t['good_lines']:,}  blank {t['blank_lines']:,}  "
                f"malformed {t['malformed_lines']:,}  ({t['seconds']} s)",
                f"  {t['users']:,} users x {t['songs']:,} songs, {t['nonzeros']:,} pairs, "
                f"{t['total_plays']:,} plays; {t['duplicate_pairs_merged']:,} duplicate pairs summed"]
        if t["filtered_users"] or t["filtered_songs"]:
            out.append(f"  filters removed {t['filtered_users']:,} users, {t['filtered_songs']:,} songs, "
                       f"{t['filtered_pairs']:,} pairs")
        for reason, n in t["malformed"].items():
            out.append(f"  skipped {n:,} line(s): {reason}")
        for ex in t["examples"]:
            out.append(f"    line {ex['line']}: {ex['reason']}: {ex['text']!r}")
    ls = report.get("listens")
    if ls:
        rules = ", ".join(f"{rule} {n:,}" for rule, n in ls["events_by_rule"].items() if n)
        out += [f"listens: {ls['events']:,} events from {ls['files']:,} file(s) ({ls['format']}), {ls['users']:,} users",
                f"  songs found by {rules or 'no rule'}; {ls['songs_created']:,} songs added from their names; "
                f"{ls['events_naming_no_song']:,} events name no song; {ls['ambiguous']:,} ambiguous names"]
        for ex in ls["ambiguous_examples"][:5]:
            out.append(f"    {ex['artist']!r} - {ex['title']!r}: {len(ex['candidates'])} songs, took {ex['chosen']}")
        for reason, n in ls["dropped"]["by_reason"].items():
            out.append(f"  dropped {n:,}: {reason}")
            for ex in ls["dropped"]["examples"].get(reason, [])[:3]:
                where = f"{ex['file']}" + (f" row {ex['row']}" if ex.get("row") is not None else "")
                out.append(f"    {where}: {ex['detail']!r}")
    c = report.get("catalog")
    if c:
        out.append(f"catalog: {c['songs']:,} songs, {c['tracks']:,} tracks, "
                   f"{c['songs_with_genre']:,} with a genre ({len(c['genres'])} genres)")
        gf, gs = c.get("genre_file"), report.get("genre_search") or {}
        if gf:
            out.append(f"  genres: {gf['labels']:,} labels read from {gf['file']}, "
                       f"{gf['tracks_matched']:,} of their tracks in the catalog")
            not_read = [f for f in gs.get("found", []) if f != gf["file"]]
            if not_read:
                out.append(f"    not read: {', '.join(not_read)} ({gs['why']})")
        elif gs.get("looked_for"):
            out.append(f"  genres: no genre file found (looked for {', '.join(gs['looked_for'])}; "
                       "or give --genres PATH)")
        if c.get("mismatched_links"):
            out.append(f"  removed {c['mismatched_links']:,} wrong track -> song link(s) listed in "
                       f"{c['sources'].get('sid_mismatches', 'sid_mismatches.txt')}")
        for source, n in c["malformed"].items():
            out.append(f"  skipped {n:,} malformed line(s) or row(s) in {source}")
        for source, n in c.get("bad_values", {}).items():
            out.append(f"  dropped {n:,} value(s) of the wrong type in {source}")
        if c.get("unknown_values"):
            counts = ", ".join(f"{k} {n:,}" for k, n in sorted(c["unknown_values"].items()))
            out.append(f"  unknown values (the dataset's -1, or year 0), kept as unknown: {counts}")
        for source, n in c.get("latin1_values", {}).items():
            out.append(f"  read {n:,} text value(s) that are not UTF-8 as Latin-1 in {source}")
        for ex in c["examples"]:
            where = f"row {ex['row']}" if "row" in ex else f"line {ex['line']}"
            reason = f"{ex['reason']}: " if ex.get("reason") else ""
            out.append(f"    {ex['file']} {where}: {reason}{ex['text']!r}")
        lf = c.get("lastfm")
        if lf:
            out.append(f"Last.fm: {lf['tracks']:,} tracks read ({lf['json_files']:,} JSON files); "
                       f"{lf['songs_with_tags']:,} songs with tags ({lf['tags']:,} tags), "
                       f"{lf['songs_with_similars']:,} with similars ({lf['similars']:,} pairs) "
                       f"({lf['seconds']} s)")
            for what, n in (("tracks not in the catalog", lf["tracks_unknown"]),
                            ("tracks with no tag", lf["tracks_without_tags"]),
                            ("similar tracks not in the catalog", lf["similar_targets_unknown"])):
                if n:
                    out.append(f"  {what}: {n:,}")
            for reason, n in lf["malformed"].items():
                out.append(f"  skipped {n:,} file(s) or row(s): {reason}")
            for reason, n in lf["bad_values"].items():
                out.append(f"  dropped {n:,} entr(ies): {reason}")
            for ex in lf["examples"]:
                out.append(f"    {ex['where']}: {ex['reason']}: {ex['text'][:120]!r}")
        elif report.get("lastfm_files") == []:
            out.append("Last.fm: no input found (the metadata source will have no tags)")
    else:
        out.append("catalog: no metadata files found (titles and genres will be missing)")
    return "\n".join(out)

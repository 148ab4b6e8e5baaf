"""A tagged music folder as the catalog (pmrs.ingest.library): tiny audio files written and
tagged by the test."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TDRC, TIT2, TPE1, TRCK, TXXX, UFID
from mutagen.mp4 import MP4FreeForm, MP4Tags
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from pmrs import IngestError
from pmrs.audio.extract import read_mapping
from pmrs.catalog import Catalog
from pmrs.ingest.library import (DUPLICATE, NO_ARTIST, NO_TITLE, UNREADABLE, UNRECOGNISED, Tags, _mp4_tags,
                                 library_song_id, read_library, read_tags, write_library_catalog,
                                 write_mapping)

SR = 8000
MBID_A = "5b11f4ce-a62d-471e-81fc-a69a8278c7da"
MBID_B = "b1a9c0e9-d987-4042-ae91-78d6a3267d69"
MBID_C = "0f5c4c93-2b3e-4c8c-9d7a-1f1a2b3c4d5e"
ARTIST_MBID = "f27ec8db-af05-4f36-916e-3d57f91ecf5e"
MP3 = "MP3" in sf.available_formats() and "MPEG_LAYER_III" in sf.available_subtypes("MP3")


def tone(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def audio(path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(), SR, **kw)
    return path


def vorbis(path, cls, **tags):
    f = cls(path)
    for k, v in tags.items():
        f[k] = v if isinstance(v, list) else [v]
    f.save()


@pytest.fixture
def music(tmp_path):
    root = tmp_path / "Music"
    # FLAC, tagged as Picard does, an album with a Unicode title
    flac = audio(root / "Björk" / "Homogenic" / "01 Jóga.flac")
    vorbis(flac, FLAC, title="Jóga", artist="Björk", album="Homogénic", date="1997-09-22", genre="Electronic",
           tracknumber="1/10", musicbrainz_trackid=MBID_B, musicbrainz_artistid=ARTIST_MBID,
           musicbrainz_releasetrackid=MBID_C)
    # the same recording again, elsewhere: a duplicate
    (root / "zz copies").mkdir(parents=True)
    shutil.copy(flac, root / "zz copies" / "joga.flac")
    # Ogg Vorbis without an MBID: its id comes from its tags
    audio(root / "Air" / "02 Playground Love.ogg", format="OGG", subtype="VORBIS")
    vorbis(root / "Air" / "02 Playground Love.ogg", OggVorbis, title="Playground Love", artist="Air",
           album="The Virgin Suicides", date="2000", tracknumber="2", genre="(17)")
    # Ogg Opus: a multi-valued artist, odd whitespace
    audio(root / "collab.opus", format="OGG", subtype="OPUS")
    vorbis(root / "collab.opus", OggOpus, title="  Get   Lucky ", artist=["Daft Punk", "Pharrell Williams"],
           date="2013-04-19T00:00:00")
    # WAV with nothing: title from the file name, no artist, id from the path
    audio(root / "untagged take 3.wav")
    # WAV with a RIFF INFO chunk (as soundfile writes one)
    with sf.SoundFile(root / "info.wav", "w", SR, 1) as f:
        f.title, f.artist, f.album, f.date, f.genre, f.tracknumber = \
            "Info Title", "Info Artist", "Info Album", "1999-02-03", "Jazz", "4"
        f.write(tone())
    # WAV with an ID3 chunk and the recording id in TXXX only (as some taggers write it)
    wav = audio(root / "id3.wav")
    w = WAVE(wav)
    w.add_tags()
    w.tags.add(TIT2(encoding=3, text="Wave Song"))
    w.tags.add(TPE1(encoding=3, text="Wave Artist"))
    w.tags.add(TXXX(encoding=3, desc="MusicBrainz Track Id", text=MBID_C))
    w.save()
    # not audio, or broken
    (root / "notes.txt").write_text("not audio")
    (root / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 7 + b"garbage" * 20)
    (root / "noise.mp3").write_bytes(bytes(range(256)) * 2)
    (root / ".hidden.flac").write_bytes(b"hidden")
    if MP3:
        mp3 = audio(root / "mp3" / "track.mp3", format="MP3", subtype="MPEG_LAYER_III")
        tags = ID3()
        tags.add(TIT2(encoding=3, text="Ünïcødé ☃"))
        tags.add(TPE1(encoding=3, text=["Artist A", "Artist B"]))
        tags.add(TALB(encoding=3, text="Album"))
        tags.add(TDRC(encoding=3, text="2003-05-01"))
        tags.add(TCON(encoding=3, text="(17)"))
        tags.add(TRCK(encoding=3, text="3/12"))
        tags.add(UFID(owner="http://musicbrainz.org", data=MBID_A.encode()))
        tags.add(TXXX(encoding=3, desc="MusicBrainz Release Track Id", text=MBID_C))
        tags.add(TXXX(encoding=3, desc="MusicBrainz Artist Id", text=ARTIST_MBID))
        tags.save(mp3)
    return root


def by_file(lib) -> dict[str, tuple[str, dict]]:
    return {lib.files[sid]: (sid, fields) for sid, fields in lib.songs.items()}


def test_tags_become_catalog_entries_with_stable_ids(music):
    lib = read_library(music)
    songs = by_file(lib)

    sid, joga = songs["Björk/Homogenic/01 Jóga.flac"]
    assert sid == f"mbid:{MBID_B}"
    assert joga["title"] == "Jóga" and joga["artist"] == "Björk" and joga["release"] == "Homogénic"
    assert joga["year"] == 1997 and joga["genre"] == "Electronic" and joga["track_number"] == 1
    assert joga["artist_mbid"] == joga["artist_id"] == ARTIST_MBID and joga["recording_mbid"] == MBID_B
    assert joga["duration"] == pytest.approx(0.5, abs=0.01)

    sid, air = songs["Air/02 Playground Love.ogg"]
    assert sid.startswith("lib:") and len(sid) == 20
    assert sid == library_song_id(Tags(title="playground  LOVE", artists=["AIR"], album="The Virgin Suicides",
                                       track="2"), "anywhere.ogg")[0]  # normalised names, not the path
    assert air["genre"] == "Rock" and air["year"] == 2000  # "(17)": the ID3v1 genre number

    _, collab = songs["collab.opus"]
    assert collab["title"] == "Get Lucky" and collab["artist"] == "Daft Punk; Pharrell Williams"
    assert collab["year"] == 2013

    sid, untagged = songs["untagged take 3.wav"]
    assert untagged["title"] == "untagged take 3" and untagged["artist"] == ""
    assert sid == library_song_id(Tags(), "untagged take 3.wav")[0] and sid.startswith("lib:")

    _, info = songs["info.wav"]
    assert (info["title"], info["artist"], info["release"], info["year"], info["genre"], info["track_number"]) == \
        ("Info Title", "Info Artist", "Info Album", 1999, "Jazz", 4)

    sid, _ = songs["id3.wav"]
    assert sid == f"mbid:{MBID_C}"  # TXXX "MusicBrainz Track Id" when there is no UFID

    if MP3:
        sid, mp3 = songs["mp3/track.mp3"]
        assert sid == f"mbid:{MBID_A}"  # the UFID, not the release track id
        assert mp3["title"] == "Ünïcødé ☃" and mp3["artist"] == "Artist A; Artist B"
        assert (mp3["year"], mp3["genre"], mp3["track_number"], mp3["artist_mbid"]) == (2003, "Rock", 3, ARTIST_MBID)
        assert mp3["duration"] == pytest.approx(0.5, abs=0.1)

    again = read_library(music)
    assert again.songs == lib.songs and again.files == lib.files


def test_the_report_counts_files_tags_and_skips(music):
    lib = read_library(music)
    rep = lib.report
    n_mp3 = 1 if MP3 else 0
    assert rep.files_found == 9 + n_mp3  # .txt and hidden files are not audio files
    assert rep.files_read == 7 + n_mp3 and rep.songs == 6 + n_mp3
    skipped = {s["file"]: s["reason"] for s in rep.skipped}
    assert skipped["broken.flac"] == UNREADABLE
    assert skipped["noise.mp3"] in (UNREADABLE, UNRECOGNISED)
    assert rep.duplicates == [{"file": "zz copies/joga.flac", "song_id": f"mbid:{MBID_B}",
                               "first": "Björk/Homogenic/01 Jóga.flac"}]
    assert rep.skipped_by_reason[DUPLICATE] == 1
    assert rep.missing == {NO_TITLE: 1, NO_ARTIST: 1}
    assert rep.ids_by_kind == {"mbid": 2 + n_mp3, "tags": 3, "path": 1}
    assert rep.tags_present["title"] == 5 + n_mp3 and rep.tags_present["recording_mbid"] == 2 + n_mp3
    assert rep.tags_present["duration"] == 6 + n_mp3


def test_extract_reads_the_folder_through_the_mapping(music, tmp_path):
    lib = read_library(music)
    work = tmp_path / "work"
    work.mkdir()
    path = write_mapping(lib, work)
    assert path == work / "library_mapping.tsv"
    assert read_mapping(path) == {rel: sid for sid, rel in lib.files.items()}
    write_library_catalog(lib, work / "catalog.lmdb")
    with Catalog(work / "catalog.lmdb") as cat:
        assert len(cat) == len(lib.songs)
        for sid, fields in lib.songs.items():
            assert cat.get(sid)["title"] == fields["title"]


def test_a_folder_named_like_a_comment_is_mapped(tmp_path):
    root = tmp_path / "lib"
    audio(root / "#1 Hits" / "song.wav")
    lib = read_library(root)
    path = write_mapping(lib, tmp_path / "m.tsv")
    assert read_mapping(path) == {"#1 Hits/song.wav": next(iter(lib.songs))}


def test_only_extracts_extensions_are_read(tmp_path):
    root = tmp_path / "lib"
    audio(root / "a.flac")
    audio(root / "b.wav")
    assert sorted(read_library(root).files.values()) == ["a.flac", "b.wav"]
    assert list(read_library(root, extensions=("flac",)).files.values()) == ["a.flac"]
    with pytest.raises(IngestError, match="no audio files"):
        read_library(root, extensions=("m4a",))
    with pytest.raises(IngestError, match="not a folder"):
        read_library(root / "a.flac")


def test_mp4_atoms():
    tags = MP4Tags()
    tags["\xa9gen"] = ["Trip-Hop"]
    tags["\xa9nam"] = ["Title"]
    tags["\xa9ART"] = ["Artist"]
    tags["\xa9alb"] = ["Album"]
    tags["\xa9day"] = ["2003-05-01T07:00:00Z"]
    tags["trkn"] = [(5, 9)]
    tags["----:com.apple.iTunes:MusicBrainz Track Id"] = [MP4FreeForm(MBID_A.encode())]
    tags["----:com.apple.iTunes:MusicBrainz Artist Id"] = [MP4FreeForm(ARTIST_MBID.encode())]
    got = _mp4_tags(tags)
    assert (got.title, got.artist, got.album, got.year, got.genre, got.track_number) == \
        ("Title", "Artist", "Album", 2003, "Trip-Hop", 5)
    assert got.recording_mbid == MBID_A and got.artist_mbid == ARTIST_MBID
    assert _mp4_tags({"gnre": [18]}).genre == "Rock"  # an ID3v1 genre number plus one, as iTunes wrote it


def test_read_tags_of_an_untagged_file_and_an_odd_date(tmp_path):
    p = audio(tmp_path / "x.flac")
    assert read_tags(p).title == "" and read_tags(p).duration == pytest.approx(0.5)
    vorbis(p, FLAC, date="'97", tracknumber="B2")
    t = read_tags(p)
    assert t.year == 0 and t.track_number == 0
    vorbis(p, FLAC, date="circa 1970s")
    assert read_tags(p).year == 1970

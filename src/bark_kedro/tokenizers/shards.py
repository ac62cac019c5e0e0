"""Token tables stored as Parquet shards of a bounded number of utterances, with an index.

A sharded table is one folder::

    <table>/shard-00000.parquet ...   the rows, ``rows_per_shard`` each (the last fewer),
                                      in row groups of ``row_group_rows`` (random access)
    <table>/_index.parquet            one row per utterance: utterance_id, speaker, split,
                                      shard, row (within the shard), length (frames or ids)
    <table>/_manifest.json            format, columns, and per shard: file, rows, SHA-256,
                                      frames (sum of lengths), rows per split

pyarrow (and ``pandas.read_parquet``) read such a folder as the whole table: names starting
with ``_`` or ``.`` are not data files to them.

:class:`ShardWriter` consumes an iterator of row batches (pandas DataFrames with the token
table's columns, in any sizes) and writes each shard as soon as it is full, atomically
(temporary name + rename), into a hidden ``.<table>.partial`` folder beside the target. The
index and manifest go last and the folder is renamed to ``<table>`` only when complete: a
crash leaves no table and no half shard visible, and a rerun into the same target skips the
shards already complete. :meth:`ShardWriter.write_work` instead consumes a :class:`ShardWorkSource`
(e.g. a tokenizer's :class:`~bark_kedro.tokenizers.corpus.TokenStream`): one shard per group
of ``rows_per_shard`` input utterances, produced only when asked for, each written as soon as
it is done with a note (its work key, rejects, figures; folded into the manifest's ``work``
list at the end). A rerun of the same work, into the same folder or into a new version beside a
killed one's ``.partial`` folder, keeps the shards whose key matches instead of producing them
again. :class:`ShardedTable` reads one lazily: the index, one shard, one
record (its row group decoded and cached), every record in order, or the whole table for small corpora.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bark_kedro.atomic_files import _alive, _fsync, atomic_path, file_digest

FORMAT = "bark-kedro-token-shards/1"
INDEX_FILE = "_index.parquet"  # "_" and "." names: pyarrow reads the folder as the table
MANIFEST_FILE = "_manifest.json"
WRITER_FILE = "_writer.json"  # in a .partial folder: the host and pid writing it
INDEX_COLUMNS = ["utterance_id", "speaker", "split", "shard", "row", "length"]
ID_COLUMNS = ("text_ids", "semantic_ids")  # a row's length when it has no n_frames
# Rows read together on random access: a global shuffle reads one row per row group, so
# groups are small (a coarse/fine row of codes is ~6 KB; 16 rows decode in well under 1 ms)
ROW_GROUP_ROWS = 16
log = logging.getLogger(__name__)


def shard_name(i: int) -> str:
    """The file name of shard ``i``."""
    return f"shard-{i:05d}.parquet"


def note_name(i: int) -> str:
    """The file name of the note of work group ``i`` (written once its shard is complete)."""
    return f"_work-{i:05d}.json"


@dataclass(frozen=True)
class ShardWork:
    """One shard's work: ``key``, a digest of everything its rows depend on, and ``run``,
    which produces the rows and a JSON-able note (e.g. its rejects and figures)."""

    key: str
    run: Callable[[], tuple[pd.DataFrame, dict[str, Any]]]


@runtime_checkable
class ShardWorkSource(Protocol):
    """What :meth:`ShardWriter.write_work` consumes: the table's columns, its work in groups of
    ``rows_per_shard`` input rows (lazily), and a check of every group's note before the table
    is made visible (it raises to keep the table from appearing)."""

    columns: list[str]

    def shard_work(self, rows_per_shard: int) -> Iterator[ShardWork]: ...

    def check(self, notes: list[dict[str, Any]]) -> None: ...


def row_lengths(table: pd.DataFrame) -> np.ndarray:
    """Frames (``n_frames``) or ids (``text_ids`` / ``semantic_ids``) of each row."""
    if "n_frames" in table.columns:
        return table["n_frames"].to_numpy(np.int64)
    for name in ID_COLUMNS:
        if name in table.columns:
            return np.fromiter((len(v) for v in table[name]), np.int64, len(table))
    return np.zeros(len(table), np.int64)


def _index_part(table: pd.DataFrame, shard: int) -> pd.DataFrame:
    missing = [c for c in ("utterance_id", "speaker", "split") if c not in table.columns]
    if missing:
        raise ValueError(f"token rows lack column(s) {missing}; have {list(table.columns)}")
    return pd.DataFrame({
        "utterance_id": table["utterance_id"].astype(str).to_numpy(),
        "speaker": table["speaker"].astype(str).to_numpy(),
        "split": table["split"].astype(str).to_numpy(),
        "shard": np.full(len(table), shard, np.int32),
        "row": np.arange(len(table), dtype=np.int32),
        "length": row_lengths(table),
    })


class ShardWriter:
    """Writes a sharded table to ``folder`` (which must not exist: a table is never
    overwritten). See the module doc."""

    def __init__(self, folder: str | Path, rows_per_shard: int = 10_000,
                 row_group_rows: int = ROW_GROUP_ROWS):
        if rows_per_shard < 1 or row_group_rows < 1:
            raise ValueError(f"rows_per_shard and row_group_rows must be >= 1, got "
                             f"{rows_per_shard}, {row_group_rows}")
        self.folder = Path(folder)
        if self.folder.exists():
            raise FileExistsError(f"sharded table {self.folder} exists already; tables are "
                                  "never overwritten (write a new version)")
        self.partial = self.folder.with_name(f".{self.folder.name}.partial")
        self.rows_per_shard, self.row_group_rows = rows_per_shard, row_group_rows
        self.skipped_shards = 0

    def complete_rows(self) -> int:
        """Rows in the consecutive complete shards a killed earlier write of this table left
        (a producer may start its batches there and pass ``first_row``)."""
        rows = 0
        for i in range(len(list(self.partial.glob("shard-*.parquet")))):
            path = self.partial / shard_name(i)
            if not path.exists():
                break
            rows += pq.ParquetFile(path).metadata.num_rows
        return rows

    def _existing(self, i: int, ids: Sequence[str] | None) -> pd.DataFrame | None:
        """The index part of shard ``i`` when a complete copy (with these ids) is there."""
        path = self.partial / shard_name(i)
        if not path.exists():
            return None
        table = pd.read_parquet(path, columns=["utterance_id", "speaker", "split",
                                                *self._length_columns(path)])
        if ids is not None and table["utterance_id"].astype(str).tolist() != list(ids):
            log.warning("%s holds other utterances than this write: rewriting it", path)
            return None
        return _index_part(table, i)

    @staticmethod
    def _length_columns(path: Path) -> list[str]:
        names = pq.ParquetFile(path).schema_arrow.names
        if "n_frames" in names:
            return ["n_frames"]
        return [n for n in ID_COLUMNS if n in names][:1]

    def _write_shard(self, i: int, rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.reset_index(drop=True)
        done = self._existing(i, rows["utterance_id"].astype(str).tolist())
        if done is not None:
            self.skipped_shards += 1
            return done
        table = pa.Table.from_pandas(rows, preserve_index=False)
        with atomic_path(self.partial / shard_name(i), sync_folder=False) as tmp:
            pq.write_table(table, tmp, row_group_size=self.row_group_rows)
        return _index_part(rows, i)

    def write(self, batches: Iterable[pd.DataFrame], first_row: int = 0,
              columns: Sequence[str] | None = None) -> ShardedTable:
        """Write the rows of ``batches`` (starting at row ``first_row`` of the table, a
        multiple of ``rows_per_shard`` at most :meth:`complete_rows`); returns the reader.
        ``columns``: the table's columns (checked on every batch; default: the first's)."""
        if first_row % self.rows_per_shard or first_row > self.complete_rows():
            raise ValueError(f"first_row {first_row} must be a multiple of rows_per_shard "
                             f"{self.rows_per_shard} within the complete shards "
                             f"({self.complete_rows()} rows)")
        self.partial.mkdir(parents=True, exist_ok=True)
        parts = [self._existing(i, None) for i in range(first_row // self.rows_per_shard)]
        shard = len(parts)
        pending: list[pd.DataFrame] = []
        n_pending = 0
        columns = list(columns) if columns is not None else None
        for batch in batches:
            if not isinstance(batch, pd.DataFrame):
                raise TypeError(f"token row batches must be pandas DataFrames, got "
                                f"{type(batch).__name__}")
            if columns is None:
                columns = list(batch.columns)
            elif list(batch.columns) != columns:
                raise ValueError(f"a batch of {self.folder.name} has columns "
                                 f"{list(batch.columns)}, expected {columns}")
            pending.append(batch)
            n_pending += len(batch)
            while n_pending >= self.rows_per_shard:
                rows = pd.concat(pending, ignore_index=True)
                parts.append(self._write_shard(shard, rows.iloc[: self.rows_per_shard]))
                shard += 1
                rest = rows.iloc[self.rows_per_shard:]
                pending, n_pending = [rest], len(rest)
        if n_pending or shard == 0:
            rows = (pd.concat(pending, ignore_index=True) if pending
                    else pd.DataFrame(columns=columns or list(INDEX_COLUMNS[:3])))
            parts.append(self._write_shard(shard, rows))
            shard += 1
        self._finish(parts, columns or [])
        return ShardedTable(self.folder)

    def write_work(self, source: ShardWorkSource,
                   earlier: Iterable[str | Path] = ()) -> ShardedTable:
        """Write the shards of ``source`` (one per work group, each written when produced; a
        group whose rows are all rejected gets a note and no shard). A group is not produced
        again when a complete shard of the same work key is in this table's ``.partial``
        folder, or in one of the ``earlier`` ``.partial`` folders (a killed run's, whose writer
        is gone: its shard is moved here, and the folder removed once this table is whole)."""
        self.partial.mkdir(parents=True, exist_ok=True)
        self._claim()
        donors = [Path(p) for p in earlier if Path(p) != self.partial and _abandoned(Path(p))]
        used: set[Path] = set()
        parts: list[pd.DataFrame] = []
        files: list[str] = []
        notes: list[dict[str, Any]] = []
        for i, work in enumerate(source.shard_work(self.rows_per_shard)):
            note = self._completed_work(i, work.key, donors, used)
            if note is None:
                rows, note = work.run()
                note = {**note, "key": work.key, "rows": len(rows)}
                if len(rows) > self.rows_per_shard:
                    raise ValueError(f"work group {i} of {self.folder.name} gave {len(rows)} "
                                     f"rows, more than rows_per_shard={self.rows_per_shard}")
                if list(rows.columns) != list(source.columns):
                    raise ValueError(f"work group {i} of {self.folder.name} has columns "
                                     f"{list(rows.columns)}, expected {source.columns}")
                if len(rows):
                    self._write_file(i, rows)
                with atomic_path(self.partial / note_name(i), sync_folder=False) as tmp:
                    tmp.write_text(json.dumps(note))  # last: the group's completion mark
            else:
                self.skipped_shards += 1
            notes.append(note)
            if note["rows"]:
                part = _index_part(pd.read_parquet(
                    self.partial / shard_name(i), columns=["utterance_id", "speaker", "split",
                                                           *self._length_columns(
                                                               self.partial / shard_name(i))]),
                    len(parts))
                parts.append(part)
                files.append(shard_name(i))
        source.check(notes)
        if not parts:  # nothing tokenized at all: one empty shard, as for an empty table
            self._write_file(0, pd.DataFrame(columns=source.columns))
            parts, files = [_index_part(pd.DataFrame(columns=source.columns), 0)], [shard_name(0)]
        self._finish(parts, list(source.columns), files, notes)
        for donor in used:
            shutil.rmtree(donor, ignore_errors=True)
            try:
                donor.parent.rmdir()  # a version folder left empty
            except OSError:
                pass
        return ShardedTable(self.folder)

    def _claim(self) -> None:
        with atomic_path(self.partial / WRITER_FILE, sync_folder=False) as tmp:
            tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))

    def _write_file(self, i: int, rows: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        with atomic_path(self.partial / shard_name(i), sync_folder=False) as tmp:
            pq.write_table(table, tmp, row_group_size=self.row_group_rows)

    def _completed_work(self, i: int, key: str, donors: list[Path],
                        used: set[Path]) -> dict[str, Any] | None:
        """The note of group ``i`` when its shard of work ``key`` is complete here, or was
        complete in a donor folder (then moved here)."""
        for folder in (self.partial, *donors):
            note = _read_note(folder, i)
            if note is None or note.get("key") != key:
                continue
            if note["rows"] and not (folder / shard_name(i)).exists():
                continue
            if folder != self.partial:
                if note["rows"]:
                    os.replace(folder / shard_name(i), self.partial / shard_name(i))
                os.replace(folder / note_name(i), self.partial / note_name(i))
                used.add(folder)
                log.info("%s: shard %d taken from %s (same work, complete)",
                         self.folder.name, i, folder)
            return note
        return None

    def _finish(self, parts: list[pd.DataFrame], columns: list[str],
                files: list[str] | None = None,
                notes: list[dict[str, Any]] | None = None) -> None:
        """Index and manifest (with each shard's SHA-256), then the rename into place."""
        files = files or [shard_name(i) for i in range(len(parts))]
        index = pd.concat(parts, ignore_index=True)
        repeated = index["utterance_id"][index["utterance_id"].duplicated()]
        if len(repeated):
            raise ValueError(f"{self.folder.name} repeats utterance ids "
                             f"{sorted(set(repeated))[:5]}")
        shards = []
        for part, file in zip(parts, files, strict=True):
            shards.append({"file": file, "rows": len(part),
                           "sha256": file_digest(self.partial / file),
                           "frames": int(part["length"].sum()),
                           "splits": {str(k): int(v) for k, v in
                                      part["split"].value_counts().sort_index().items()}})
        manifest = {"format": FORMAT, "columns": columns, "rows": len(index),
                    "rows_per_shard": self.rows_per_shard, "shards": shards}
        if notes is not None:
            manifest["work"] = notes
        with atomic_path(self.partial / INDEX_FILE, sync_folder=False) as tmp:
            index.to_parquet(tmp, index=False)
        with atomic_path(self.partial / MANIFEST_FILE, sync_folder=False) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1))
        for leftover in [*self.partial.glob("_work-*.json"), self.partial / WRITER_FILE]:
            leftover.unlink(missing_ok=True)  # the notes are in the manifest now
        _fsync(self.partial)
        os.replace(self.partial, self.folder)
        _fsync(self.folder.parent)


def _read_note(folder: Path, i: int) -> dict[str, Any] | None:
    try:
        return json.loads((folder / note_name(i)).read_text())
    except (OSError, ValueError):
        return None


def _abandoned(partial: Path) -> bool:
    """Whether the writer of a ``.partial`` folder is gone (this host's, by its pid)."""
    try:
        writer = json.loads((partial / WRITER_FILE).read_text())
    except (OSError, ValueError):
        return partial.is_dir()
    if writer.get("host") != socket.gethostname():
        return False  # another host's writer may be at work: leave its folder alone
    return writer.get("pid") == os.getpid() or not _alive(int(writer.get("pid", -1)))


def read_index(path: str | Path) -> pd.DataFrame:
    """A table's index file as a compact DataFrame: ``utterance_id`` as Arrow-backed
    strings (no Python string objects), ``speaker`` and ``split`` as categoricals (read as
    Parquet dictionaries, never expanded), numbers as stored."""
    table = pq.read_table(path, read_dictionary=["speaker", "split"])
    arrow_strings = {pa.string(): pd.StringDtype("pyarrow"),
                     pa.large_string(): pd.StringDtype("pyarrow")}
    default_is_arrow = isinstance(pd.Series(["x"]).dtype, pd.StringDtype)  # pandas 3
    return table.to_pandas(types_mapper=None if default_is_arrow else arrow_strings.get,
                           self_destruct=True)


def write_shards(data: pd.DataFrame | Iterable[pd.DataFrame] | ShardWorkSource,
                 folder: str | Path, rows_per_shard: int = 10_000, row_group_rows: int = ROW_GROUP_ROWS,
                 earlier: Iterable[str | Path] = ()) -> ShardedTable:
    """Write a table (one DataFrame, an iterator of row batches, or a
    :class:`ShardWorkSource`, resuming from ``earlier`` partial folders) as a sharded table."""
    writer = ShardWriter(folder, rows_per_shard, row_group_rows)
    if isinstance(data, ShardWorkSource):
        return writer.write_work(data, earlier)
    if isinstance(data, pd.DataFrame):
        table = data
        batches = (table.iloc[i:i + rows_per_shard]
                   for i in range(0, max(len(table), 1), rows_per_shard))
        return writer.write(batches, columns=list(table.columns))
    if isinstance(data, ShardedTable):
        return writer.write(data.iter_shards(), columns=data.columns)
    return writer.write(data)


class ShardedTable:
    """A sharded token table read lazily (see the module doc); thread-safe, and picklable
    (caches are not carried), so Grain worker processes can each open their own.

    Record reads keep at most ``cache_row_groups`` decoded row groups and ``max_open_shards``
    open shard files (each holds its parsed Parquet footer, which grows with its row groups),
    least recently used first out, so reading memory does not grow with the number of shards
    (streamed training reads a chunk's records in shard order: a shard is opened about once a
    chunk)."""

    def __init__(self, folder: str | Path, cache_row_groups: int = 64, max_open_shards: int = 4):
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST_FILE
        if not manifest.exists():
            raise FileNotFoundError(f"{self.folder} is not a sharded token table (no "
                                    f"{MANIFEST_FILE})")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest}: format {self.manifest.get('format')!r}, expected "
                             f"{FORMAT!r}")
        if cache_row_groups < 1 or max_open_shards < 1:
            raise ValueError(f"cache_row_groups ({cache_row_groups}) and max_open_shards "
                             f"({max_open_shards}) must be >= 1")
        self.cache_row_groups, self.max_open_shards = cache_row_groups, max_open_shards
        self._index: pd.DataFrame | None = None
        self._files: OrderedDict[int, pq.ParquetFile] = OrderedDict()  # open, footers parsed
        self._groups: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()  # decoded
        self._lock = threading.Lock()  # reader threads share the open files and the cache

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "cache_row_groups": self.cache_row_groups,
                "max_open_shards": self.max_open_shards}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"], state["cache_row_groups"], state["max_open_shards"])

    def __repr__(self) -> str:
        return f"ShardedTable({str(self.folder)!r}, rows={len(self)}, shards={self.n_shards})"

    def __len__(self) -> int:
        return int(self.manifest["rows"])

    @property
    def columns(self) -> list[str]:
        return list(self.manifest["columns"])

    @property
    def n_shards(self) -> int:
        return len(self.manifest["shards"])

    @property
    def work_notes(self) -> list[dict[str, Any]]:
        """The note of every work group the table was written from (rejects, figures), in
        order; empty for a table written from row batches."""
        return list(self.manifest.get("work", []))

    @property
    def digest(self) -> str:
        """A SHA-256 of the table's contents (from the shards' digests in the manifest)."""
        text = json.dumps([self.columns, [s["sha256"] for s in self.manifest["shards"]]])
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def index(self) -> pd.DataFrame:
        """utterance_id, speaker, split, shard, row, length of every row, in table order
        (read once; compact: Arrow strings for the ids, categoricals for speaker and split)."""
        if self._index is None:
            self._index = read_index(self.folder / INDEX_FILE)
        return self._index

    def read_shard(self, i: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows of shard ``i``."""
        if not 0 <= i < self.n_shards:
            raise IndexError(f"{self.folder} has {self.n_shards} shards, not {i}")
        cols = list(columns) if columns is not None else None
        return pd.read_parquet(self.folder / self.manifest["shards"][i]["file"], columns=cols)

    def iter_shards(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every shard's rows, in order."""
        for i in range(self.n_shards):
            yield self.read_shard(i, columns)

    def iter_records(self, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every row as a dict, in table order (one shard in memory at a time)."""
        for shard in self.iter_shards(columns):
            yield from shard.to_dict("records")

    def record(self, shard: int, row: int) -> dict[str, Any]:
        """Row ``row`` of shard ``shard`` as a dict (its row group is read and cached; safe
        to call from several threads)."""
        with self._lock:
            group, offset = self._row_group(shard, row)
        return _row_dict(group, offset)

    def _row_group(self, shard: int, row: int) -> tuple[pa.Table, int]:
        """The decoded row group holding ``row`` of ``shard`` (cached) and the row's offset."""
        file = self._files.get(shard)
        if file is None:
            file = self._files[shard] = pq.ParquetFile(
                self.folder / self.manifest["shards"][shard]["file"])
            if len(self._files) > self.max_open_shards:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(shard)
        group_rows = file.metadata.row_group(0).num_rows if file.metadata.num_row_groups else 1
        key = (shard, row // max(group_rows, 1))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = file.read_row_group(key[1])
            if len(self._groups) > self.cache_row_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(key)
        return group, row - key[1] * group_rows

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole table as one DataFrame (small corpora and tests)."""
        frames = list(self.iter_shards(columns))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _row_dict(group: pa.Table, offset: int) -> dict[str, Any]:
    """Row ``offset`` of ``group`` as ``to_pandas().to_dict("records")`` gives it (lists as
    NumPy arrays of their own, other values as Python scalars), without a DataFrame (which
    costs more than the row group's read)."""
    row: dict[str, Any] = {}
    for name, column in zip(group.column_names, group.columns, strict=True):
        value = column[offset]
        if isinstance(value, (pa.ListScalar, pa.LargeListScalar)):
            row[name] = (None if value.values is None
                         else value.values.to_numpy(zero_copy_only=False).copy())
        else:
            row[name] = value.as_py()
    return row


def as_frame(table: pd.DataFrame | ShardedTable | None) -> pd.DataFrame | None:
    """A token table as one DataFrame (a sharded table read whole); ``None`` stays ``None``."""
    return table.to_pandas() if isinstance(table, ShardedTable) else table
